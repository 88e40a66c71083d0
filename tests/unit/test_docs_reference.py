"""docs/reference.md is kept in step with the code: every configuration key in the schema
and every metric mqguard exports has a row, and no row names something that does not
exist (issue 18 item 8)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

from mqguard.config import SCHEMA
from mqguard.mq.mqi import PcfCollector, PcfView
from mqguard.serve.telemetry import Telemetry
from tests.unit.test_metrics_http_notify import registry_for, snap

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


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
    names: Set[str] = set()
    families = list(reg.collect()) + list(PcfCollector(PcfView, "QM1").collect())  # the MQI view's own family
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
