"""docs/reference.md is kept in step with the code: every configuration key in the schema
and every metric mqguard exports has a row, and no row names something that does not
exist (issue 18 item 8)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Set, Tuple

from mqguard.base.telemetry import Telemetry
from mqguard.config import SCHEMA
from mqguard.mq.mqi import PcfCollector, PcfView
from tests.unit.serve.test_metrics_http_notify import registry_for, snap

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def section_rows(heading: str) -> List[str]:
    """The table rows under the ``## heading`` section of the reference."""
    text = REFERENCE.read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end > 0 else None]
    return [line for line in body.splitlines() if line.startswith("| `")]


def documented_keys() -> Set[Tuple[str, str]]:
    keys: Set[Tuple[str, str]] = set()
    section = ""
    for row in section_rows("Configuration"):
        first = row.split("|")[1]
        named = re.match(r"\s*`\[(\w+)\] ", first)
        if named:
            section = named.group(1)
        for token in re.findall(r"`(?:\[\w+\] )?(\w+)`", first):
            keys.add((section, token))
    return keys


def test_every_configuration_key_has_a_row_and_every_row_is_a_key() -> None:
    schema = {(s, k) for s, options in SCHEMA.items() for k in options}
    documented = documented_keys()
    assert schema - documented == set(), f"keys without a row in docs/reference.md: {sorted(schema - documented)}"
    assert documented - schema == set(), f"rows for keys that do not exist: {sorted(documented - schema)}"


def exported_metrics() -> Set[str]:
    reg = registry_for(snap(), Telemetry())
    nha = {"role": "active", "insync": True, "quorum_instances": 3, "backlog_bytes": 0}
    native = registry_for(replace(snap(), native_ha=True, nha=nha), Telemetry())  # the Native HA families
    names: Set[str] = set()
    families = list(reg.collect()) + list(native.collect()) + list(PcfCollector(PcfView, "QM1").collect())
    for family in families:
        if family.name.startswith(("process_", "python_")):
            continue
        suffix: Dict[str, str] = {"counter": "_total"}
        names.add(family.name + suffix.get(family.type, ""))
    return names


def test_every_exported_metric_has_a_row_and_every_row_is_exported() -> None:
    documented = {m for row in section_rows("Metrics") for m in re.findall(r"`(mqguard_\w+)`", row.split("|")[1])}
    exported = exported_metrics()
    assert exported - documented == set(), f"metrics without a row: {sorted(exported - documented)}"
    assert documented - exported == set(), f"rows for metrics mqguard does not export: {sorted(documented - exported)}"


USER_DOCS = ["README.md", "docs/operating.md", "docs/native-ha.md", "docs/reference.md", "docs/deploying.md",
             "docs/monitoring.md", "docs/real-mq.md", "docs/security.md", "docs/mqguard.8"]
JARGON = re.compile(r"§ ?\d|\b[Ss]ection \d+|\b[Ii]ssue \d+|[Ss]ecurity round|\bround \d|\b(HIGH|MEDIUM|LOW) ?\d|"
                    r"\bcontract\b")


def test_user_docs_speak_to_operators_not_to_the_review() -> None:
    """Issue 27: contract section numbers and review jargon ("security round 2", "issue 19", "§17") in the docs an
    operator reads; they name a file that is not in the repository. Those belong in docs/development.md."""
    found = [f"{name}:{n}: {line.strip()[:80]}" for name in USER_DOCS
             for n, line in enumerate((ROOT / name).read_text().splitlines(), 1) if JARGON.search(line)]
    assert found == []


def test_the_readmes_state_line_and_healthz_claim_are_what_the_code_does() -> None:
    """Issue 27: the README showed a state line mqguard never prints and said /healthz stays 200 through the grace
    period; the line is rendered here by the code, and /healthz is asked for a recovering host."""
    from mqguard.serve.http import health_verdict
    from mqguard.supervisor.snapshot import summary_line
    from tests.unit.serve.test_metrics_http_notify import MONO

    readme = (ROOT / "README.md").read_text()
    running = snap(storage_path="/MQHA")
    line = summary_line(running, 100.0, "10m", "autoscaling")
    assert f'"{line}"' in readme, line
    assert "503 at\nonce otherwise" in readme or "503 at once otherwise" in readme
    recovering = snap(state="recovering", healthy=False, qmgr_status="ended_unexpectedly", bad_seconds=1.0,
                      bad_reasons=["queue manager ended_unexpectedly"])
    assert health_verdict(recovering, 60.0, MONO)[0] is False, "a bad host is unhealthy at once, not after grace"
    assert health_verdict(running, 60.0, MONO)[0] is True
    fences = [n for n, x in enumerate(readme.splitlines()) if x.startswith("```")]
    assert len(fences) % 2 == 0, "every code block is closed (the Layout rendered as prose)"
    layout = readme.split("## Layout", 1)[1]
    assert layout.split("\n```\n", 1)[1].startswith("mqguard/"), "the layout is inside its code block"


def test_the_layouts_name_every_package_folder_and_module() -> None:
    """Issue 29 item 5: the README's Layout names every package and top-level folder; docs/development.md's names
    every module (a new file that nobody maps fails here)."""
    import subprocess

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("\n```\n", 2)[1]
    packages = sorted(p.name for p in (ROOT / "mqguard").iterdir() if (p / "__init__.py").exists())
    missing = [p for p in packages if f"{p}/" not in block]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    folders = sorted({t.split("/")[0] for t in tracked if "/" in t and not t.startswith(".")})
    missing += [f for f in folders if f"{f}/" not in block]
    assert not missing, f"the README's Layout does not name {missing}"
    dev = (ROOT / "docs" / "development.md").read_text()
    layout = dev.split("## Layout", 1)[1].split("\n## ", 1)[0]
    modules = sorted(f.relative_to(ROOT / "mqguard").as_posix() for f in (ROOT / "mqguard").rglob("*.py")
                     if f.name != "__init__.py" and "__pycache__" not in f.parts)
    unnamed = [m for m in modules if m.rsplit("/", 1)[-1] not in layout]
    assert not unnamed, f"docs/development.md's Layout does not name {unnamed}"
