"""MQ's own diagnostics (contract section 22): error-log messages and FDC files, read safely, each once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from mqguard.mq.diagnostics import Diagnostics, LogTail, parse_error_log
from tests.conftest import Harness
from tests.sim import mqsim


def entry(msg: str, when: str = "2026-12-04T18:05:25.123Z") -> str:
    return (f"12/04/2026 06:05:25 PM - Process(1234.1) User(mqm) Program(amqzxma0)\n"
            f"                    Host(host1) Installation(Installation1)\n"
            f"                    VRMF(9.4.0.0) QMgr(QM1)\n                    Time({when})\n\n{msg}\n\n"
            "EXPLANATION:\nx\nACTION:\ny\n" + "-" * 79 + "\n")


def test_real_layout_entries_are_parsed_with_time_id_and_continued_text() -> None:
    text = entry("AMQ7017S: Log not available.") + entry("AMQ6119S: An internal IBM MQ error has occurred\n"
                                                         "(Operation not permitted).", "2026-12-04T18:06:00.000Z")
    msgs = parse_error_log(text, "qmgr")
    assert [(m.id, m.time, m.severity) for m in msgs] == [("AMQ7017S", "2026-12-04T18:05:25.123Z", "S"),
                                                         ("AMQ6119S", "2026-12-04T18:06:00.000Z", "S")]
    assert msgs[1].text == "An internal IBM MQ error has occurred (Operation not permitted)."
    assert parse_error_log("garbage\n\x1b[31mAMQ1234X: no\n", "qmgr") == []


def test_each_message_is_read_once_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "AMQERR01.LOG"
    log.write_text(entry("AMQ8003I: started."))
    tail = LogTail(str(tmp_path))
    tail.baseline()
    assert tail.read_new() == ""
    with open(log, "a") as fh:
        fh.write(entry("AMQ9999E: first."))
    assert [m.id for m in parse_error_log(tail.read_new(), "qmgr")] == ["AMQ9999E"]
    with open(log, "a") as fh:
        fh.write(entry("AMQ9998E: written just before the rotation."))
    os.replace(log, tmp_path / "AMQERR02.LOG")  # MQ rotates 01 -> 02
    log.write_text(entry("AMQ9997E: in the new file."))
    assert [m.id for m in parse_error_log(tail.read_new(), "qmgr")] == ["AMQ9998E", "AMQ9997E"]
    assert tail.read_new() == ""


def test_links_fifos_and_huge_files_are_not_followed_blocked_on_or_read_whole(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(entry("AMQ0000S: secret."))
    logs = tmp_path / "errors"
    logs.mkdir()
    (logs / "AMQERR01.LOG").symlink_to(secret)
    tail = LogTail(str(logs))
    tail.baseline()
    assert tail.read_new() == ""
    (logs / "AMQERR01.LOG").unlink()
    os.mkfifo(logs / "AMQERR01.LOG")
    assert tail.read_new() == ""  # returns at once, does not block on the FIFO
    (logs / "AMQERR01.LOG").unlink()
    (logs / "AMQERR01.LOG").write_text(entry("AMQ1111E: x.") * 2000)  # ~1 MB
    tail = LogTail(str(logs))
    assert len(tail.read_new(limit=4096)) == 4096


def test_a_failed_start_in_the_simulator_is_surfaced_with_its_fdc_and_counted(sim: Harness) -> None:
    sim.create_by_hand()
    counts: Dict[str, int] = {}
    fdcs: List[int] = []
    qm_errors = f"{sim.efs.path}/qmgrs/QM1/errors"
    diag = Diagnostics(lambda: qm_errors, lambda: f"{sim.prefix}/errors",
                       lambda sev, n: counts.__setitem__(sev, counts.get(sev, 0) + n), fdcs.append)
    diag.look(baseline=True)
    sim.knob("strmqm.exit", "71")
    subprocess.run([f"{sim.bindir}/strmqm", "QM1"], capture_output=True, timeout=30)
    found = diag.look()
    ids = [m.id for m in found]
    assert ids.count("AMQ6109E") == 2  # the queue manager's log and MQ's system log
    fdc = [m for m in found if m.source == "fdc"]
    assert len(fdc) == 1 and "probe id XC130003" in fdc[0].text and fdcs == [1]
    assert counts == {"E": 2}
    assert [m.id for m in diag.recent()][-1].endswith(".FDC")
    assert diag.look() == []  # each once
    assert "AMQ6109E" in mqsim.error_log(qm_errors)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file another owner")
def test_files_someone_else_dropped_into_mqs_errors_directory_are_not_mqs_diagnostics(tmp_path: Path) -> None:
    """Security round 3 (low): MQ's errors/ is mode 3777, so anyone could spoof MQ's diagnostics there."""
    from mqguard.mq.diagnostics import Diagnostics

    errors = tmp_path / "errors"
    errors.mkdir()
    d = Diagnostics(lambda: None, lambda: str(errors), owners=frozenset({0}))
    d.look(baseline=True)
    (errors / "AMQERR01.LOG").write_text(entry("AMQ9999E: spoofed."))
    (errors / "AMQ4242.0.FDC").write_text("| Probe Id          :- XY000001 |\n")
    for f in errors.iterdir():
        os.chown(f, 4242, 4242)
    assert d.look() == [], "another user's files speak for no one"
    for f in errors.iterdir():
        os.chown(f, 0, 0)
    assert {m.id for m in d.look()} == {"AMQ9999E"}, "MQ's own log is read again once it is MQ's"


def test_the_historys_evidence_line_is_bounded_and_keeps_errors_and_fdcs_only() -> None:
    from mqguard.mq.diagnostics import MqMessage, evidence_line

    msgs = [MqMessage("2026-12-06T03:12:09Z", f"AMQ{6100 + i}E", "x", "qmgr") for i in range(10)]
    msgs += [MqMessage("2026-12-06T03:12:09Z", "AMQ5051I", "informational", "qmgr"), MqMessage("2026-12-06T03:12:09Z", "AMQ6109E", "again", "system")]
    msgs += [MqMessage("2026-12-06T03:12:09Z", f"AMQ{1000 + i}.0.FDC", "FDC file", "fdc") for i in range(5)]
    line = evidence_line(msgs)
    assert line.startswith("AMQ6100E AMQ6101E") and "(+4 more)" in line and "AMQ5051I" not in line
    assert "FDC AMQ1000.0.FDC AMQ1001.0.FDC AMQ1002.0.FDC (+2 more)" in line and len(line) <= 300
    assert evidence_line([MqMessage("2026-12-06T03:12:09Z", "AMQ5051I", "informational", "qmgr")]) == ""
