"""dspmq parsing against real output lines (tests/data/dspmq-real.txt), and as an attacker would feed it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest

from mqguard.mq.status import MAX_LINE, ParseError, QmStatus, find_entry, parse_dspmq
from tests.conftest import Harness

DATA = Path(__file__).resolve().parents[2] / "data" / "dspmq-real.txt"


def cases() -> List[Tuple[str, str, str]]:
    """(expected, source, output) for each block of the data file."""
    out: List[Tuple[str, str, str]] = []
    expected = source = ""
    lines: List[str] = []
    for raw in DATA.read_text().splitlines() + ["== end | end"]:
        if raw.startswith("#") or not raw.strip():
            continue
        if raw.startswith("== "):
            if lines:
                out.append((expected, source, "\n".join(lines) + "\n"))
            expected, source = (part.strip() for part in raw[3:].split("|", 1))
            lines = []
        else:
            lines.append(raw)
    return out


CASES = cases()


def qmgr_of(output: str) -> str:
    m = re.search(r"QMNAME\(([^)]*)\)", output)
    return m.group(1) if m else "QM1"


def test_the_data_file_covers_every_status_word() -> None:
    covered = {expected for expected, _, _ in CASES}
    assert {s.value for s in QmStatus} <= covered
    assert len(CASES) >= 25


def root_fstype() -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4] == "/":
            fstype = right.split()[0]
    return fstype


@pytest.mark.parametrize("expected,source,output", CASES, ids=[f"{s}-{e}-{i}" for i, (e, s, _) in enumerate(CASES)])
def test_parser_reads_every_real_line(expected: str, source: str, output: str) -> None:
    if expected == "ERROR":
        with pytest.raises(ParseError):
            find_entry(output, qmgr_of(output))
        return
    entry = find_entry(output, qmgr_of(output))
    assert entry.status.value == expected
    assert len(entry.instances) == output.count("INSTANCE(")


def test_extra_attributes_of_dspmq_o_all_do_not_break_parsing() -> None:
    line = ("QMNAME(QM1)                                               STATUS(Running) DEFAULT(yes) "
            "STANDBY(Permitted) INSTNAME(Installation1) INSTPATH(/opt/mqm) INSTVER(9.4.0.0) HA() DRROLE()")
    assert find_entry(line, "QM1").status is QmStatus.RUNNING


def test_two_status_attributes_on_one_line_are_an_error() -> None:
    line = "QMNAME(QM1)   STATUS(Ended unexpectedly) STATUS(Running)"
    with pytest.raises(ParseError, match="STATUS"):
        find_entry(line, "QM1")


def test_unknown_word_stays_bad_with_the_raw_word_in_the_reason() -> None:
    with pytest.raises(ParseError, match="Hibernating quietly"):
        find_entry("QMNAME(QM1)   STATUS(Hibernating quietly)", "QM1")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("size", [64 * 1024, 10 * 1024 * 1024])
def test_long_garbage_lines_are_refused_quickly(size: int) -> None:
    # The old regex scanner took 31 s on 64 KB of letters and hung on 10 MB.
    for line in ("Q" * size, "QMNAME(QM1) " + "A(" * (size // 2), "QMNAME(QM1)" + " STATUS(x)" * (size // 10)):
        with pytest.raises(ParseError):
            parse_dspmq(line)


@pytest.mark.timeout(20)
def test_many_short_lines_parse_in_linear_time() -> None:
    out = "\n".join(f"QMNAME(QM{i})   STATUS(Running)" for i in range(20000))
    assert len(parse_dspmq(out)) == 20000
    assert MAX_LINE < 64 * 1024


@pytest.mark.parametrize("expected,source,output", CASES, ids=[f"{s}-{e}-{i}" for i, (e, s, _) in enumerate(CASES)])
def test_mqguard_check_judges_every_real_line(sim: Harness, expected: str, source: str, output: str) -> None:
    """`mqguard check` runs the simulator's dspmq, which prints the recorded line."""
    name = qmgr_of(output)
    sim.qmgr = name
    # check asks MQ nothing while storage is bad: the plain directory lies on the root file system,
    # so that mount is the storage here
    sim.configure(queue_manager={"name": name, "listener_port": "0"},
                  storage={"path": "/", "fstypes": root_fstype()})
    sim.cli("validate-config", "--config", str(sim.conf))
    from tests.sim import mqsim  # register the name so dspmq -m NAME is answered, as on a real host

    sim.prepare_root()
    mqsim.Sim(sim.bindir).add_stanza({"Name": name, "Directory": name.replace(".", "!"), "Prefix": sim.prefix})
    sim.knob("dspmq.output", output)
    res = sim.cli("check", "--config", str(sim.conf))
    qm_line = next(line for line in res.stdout.splitlines() if line.startswith("queue manager"))
    if expected == "ERROR":
        assert "BAD" in qm_line
    elif expected == "running":
        assert " ok " in qm_line and "running" in qm_line
    elif expected == "starting":
        assert "starting" in qm_line and res.returncode != 0
    else:
        assert "BAD" in qm_line and expected in qm_line, qm_line
        assert res.returncode == 1
