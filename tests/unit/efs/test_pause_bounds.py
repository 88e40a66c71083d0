"""Issue 16 items 1, 2, 6, 7, 11: a pause record on EFS is outside input from every host that mounts it.

Each of these failed against the code before the fix: a record with until 1e300 (or Infinity, or a year
past 9999) crashed the loop when formatted, one a few years ahead paused supervision for ever, since 1e300
broke every /status, NaN seconds over the control socket were written to EFS.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqguard.base.clock import iso_utc
from mqguard.efs import pause as pause_mod
from mqguard.efs.pause import Pause, PauseWatch
from mqguard.efs.statedir import allowed_owners
from mqguard.supervisor.snapshot import Snapshot, summary_line

NOW = 1_796_000_000.0  # 2026-12


def record(**fields: object) -> str:
    doc = {"version": 1, "until": NOW + 3600, "since": NOW, "reason": "fix pack", "by": "ops"}
    doc.update(fields)
    return json.dumps(doc)


@pytest.mark.parametrize("fields", [
    {"until": 1e300}, {"until": float("inf")}, {"until": float("nan")}, {"since": 1e300},
    {"until": 253402300800.0},  # 10000-01-01: past what a date can show
    {"until": NOW + 30 * 86400},  # a month ahead: longer than any pause_max can be
    {"since": NOW + 7 * 86400}, {"until": -1.0}, {"since": -5.0},
])
def test_records_outside_a_sane_window_are_no_pause(fields: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        pause_mod.parse(record(**fields), now=NOW)
    assert pause_mod.parse(record(), now=NOW).until == NOW + 3600


def test_json_infinity_and_nan_literals_are_refused() -> None:
    text = '{"version":1,"until":Infinity,"since":0,"reason":"x","by":"y"}'
    with pytest.raises(ValueError):
        pause_mod.parse(text, now=NOW)
    with pytest.raises(ValueError):
        pause_mod.parse(text.replace("Infinity", "NaN"), now=NOW)


def test_a_pause_always_expires_within_pause_max_of_first_sight() -> None:
    """Item 2: a record written on EFS to last days holds here at most pause_max after this host first saw it."""
    wall = [NOW]
    records: List[Optional[Pause]] = [Pause(until=NOW + 6 * 86400, reason="x", by="y", since=NOW)]
    watch = PauseWatch("/efs", frozenset({0}), lambda: None, reader=lambda p, o: records[0],
                       pause_max=3600.0, wall=lambda: wall[0])
    watch._read()  # what the background thread does
    assert watch.current is not None and watch.current.until == NOW + 3600
    wall[0] += 1800
    watch._read()  # the same record again: the first sight stands
    assert watch.current is not None and watch.current.until == NOW + 3600
    records[0] = Pause(until=NOW + 5 * 86400, reason="again", by="y", since=NOW + 1800)
    watch._read()  # a new record: its own first sight
    assert watch.current is not None and watch.current.until == NOW + 1800 + 3600


def test_a_planted_link_or_fifo_at_the_record_is_no_pause_and_said_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Item 11: refused records were logged only at DEBUG and kept the last value."""
    owners = allowed_owners()
    state = tmp_path / ".mqguard"
    state.mkdir(mode=0o750)
    secret = tmp_path / "elsewhere"
    secret.write_text(record())
    (state / "pause").symlink_to(secret)
    watch = PauseWatch(str(tmp_path), owners, lambda: None, pause_max=3600.0, wall=time.time)
    watch.set(Pause(until=time.time() + 60, reason="old", by="y", since=time.time()))
    watch._read()
    assert watch.current is None
    assert any(r.levelname == "WARNING" and "pause record" in r.getMessage() for r in caplog.records)
    (state / "pause").unlink()
    os.mkfifo(state / "pause")
    started = time.monotonic()
    watch._read()
    assert watch.current is None and time.monotonic() - started < 10  # never blocks on a FIFO (for ever)


@settings(max_examples=300, deadline=None)
@given(until=st.floats(allow_nan=True, allow_infinity=True), since=st.floats(allow_nan=True, allow_infinity=True),
       reason=st.text(max_size=600), by=st.text(max_size=300))
def test_whatever_parses_can_be_formatted_everywhere(until: float, since: float, reason: str, by: str) -> None:
    """Items 1 and 6: nothing that passed parsing may make STATUS=, /status or a log line raise."""
    try:
        p = pause_mod.parse(json.dumps({"version": 1, "until": until, "since": since, "reason": reason, "by": by}),
                            now=NOW)
    except ValueError:
        return
    assert math.isfinite(p.until) and math.isfinite(p.since)
    snap = Snapshot(version="0", qmgr="QM1", state="paused", healthy=True, qmgr_status="running", qmgr_detail="",
                    storage_path="/efs", storage_ok=True, storage_detail="", listener_port=1414, listener_ok=True,
                    bad_since=None, bad_seconds=0.0, restarts=0, reported_unhealthy=False, last_cycle=NOW,
                    verdict="", paused=p)
    json.dumps(snap.to_json())
    assert summary_line(snap, 1.0, "10m", "log").startswith("PAUSED until ")
    assert iso_utc(p.until) and iso_utc(p.since)


def test_iso_utc_never_raises() -> None:
    for value in (1e300, float("inf"), float("nan"), -1e300):
        assert iso_utc(value) == "invalid time"


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -float("inf"), 0, -5, True, "3600"])
def test_the_control_socket_refuses_seconds_that_are_not_a_positive_finite_number(tmp_path: Path,
                                                                                   seconds: object) -> None:
    """Item 7: NaN was written to EFS as "until": NaN (and the operator told "failed"); Infinity gave a traceback."""
    from types import SimpleNamespace

    from mqguard.serve.control import Peer, Request
    from mqguard.serve.operations import Operations

    cfg = SimpleNamespace(storage=SimpleNamespace(path=str(tmp_path)), control=SimpleNamespace(pause_max=86400.0))
    watch = PauseWatch(str(tmp_path), allowed_owners(), lambda: None)
    ops = Operations(lambda: cfg, None, watch, allowed_owners(), lambda: None)  # type: ignore[arg-type]
    ok, message = ops.pause(Request("pause", Peer(1, 0, 0), {"seconds": seconds, "reason": "x"}))
    assert not ok and "positive, finite number" in message
    assert not (tmp_path / ".mqguard" / "pause").exists() and watch.current is None
    ok, message = ops.pause(Request("pause", Peer(1, 0, 0), {"seconds": 60, "reason": "x"}))
    assert ok and json.loads((tmp_path / ".mqguard" / "pause").read_text())["until"] > time.time()


def test_silent_connections_of_group_members_never_lock_root_out() -> None:
    """Item 8: four silent connections from any mqm process took every slot before the read and the permission
    check, and root got "busy" for as long as they stayed."""
    import grp
    import shutil
    import subprocess
    import sys
    import tempfile

    from mqguard.serve.control import ControlServer, ask

    try:
        grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no group nogroup on this machine (the test runs a member of it as nobody)")
    if os.geteuid() != 0:
        pytest.skip("needs root: connects as nobody and as root")
    where = tempfile.mkdtemp(dir="/tmp")
    os.chmod(where, 0o755)
    path = os.path.join(where, "ctl.sock")
    server = ControlServer(path, "nogroup", lambda req: (True, f"{req.op} by uid {req.peer.uid}"))
    server.start()
    silent = [subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                                "-c", "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
                                "print('in', flush=True); time.sleep(20)", path], stdout=subprocess.PIPE)
              for _ in range(6)]
    try:
        for proc in silent:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"in"
        time.sleep(0.3)
        ok, message = ask(path, "resume", 3.0)
        assert ok and message == "resume by uid 0", message
    finally:
        for proc in silent:
            proc.kill()
            proc.wait()
        server.stop()
        shutil.rmtree(where, ignore_errors=True)
