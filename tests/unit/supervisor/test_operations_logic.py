"""Pure parts of operating mqguard, with an injected clock: pause rules and expiry,
warm pools, the deliberate-end wait, the pause record, and what /active and
/standby answer in every state."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import pytest

from mqguard.efs import pause as pause_mod
from mqguard.efs.pause import Pause, PauseWatch
from mqguard.efs.statedir import allowed_owners
from mqguard.mq.status import QmStatus
from mqguard.serve.http import role_verdict
from mqguard.supervisor.machine import (
    ActionKind,
    JobOutcome,
    JobResult,
    JobStage,
    State,
)
from mqguard.supervisor.snapshot import Snapshot
from tests.unit.supervisor.machine_driver import Driver, kinds

R, ENDED_N, CRASHED = QmStatus.RUNNING, QmStatus.ENDED_NORMALLY, QmStatus.ENDED_UNEXPECTEDLY


def test_paused_for_hours_with_mq_down_starts_and_reports_nothing() -> None:
    d = Driver()
    d.up()
    v = d.step(after=1, qmgr=CRASHED, paused=True)
    assert v.state is State.PAUSED and not v.healthy and v.actions == []
    for _ in range(3600):
        v = d.step(after=5, qmgr=CRASHED, paused=True)
        assert v.actions == [] and v.state is State.PAUSED
    v = d.step(after=5, qmgr=R, paused=True)
    assert v.healthy and v.state is State.PAUSED  # /healthz keeps telling the truth


def test_resume_is_a_clean_slate_start_now_and_a_full_grace_period() -> None:
    d = Driver(grace_period=60)
    d.up()
    d.step(after=1, qmgr=CRASHED)  # an episode begins before the pause...
    d.step(after=50, qmgr=CRASHED, stage=JobStage.STARTING)
    d.step(after=5, qmgr=ENDED_N, paused=True)  # ...and is forgotten by it
    v = d.step(after=600, qmgr=ENDED_N)  # resumed (or expired)
    assert kinds(v) == [ActionKind.BRING_UP], "an ended queue manager is started at once after a resume"
    assert d.m.bad_since == d.clock.monotonic() and d.m.budget_remaining(d.clock.monotonic()) == 5
    v = d.step(after=59, qmgr=ENDED_N, result=JobResult(JobOutcome.FAILED, "strmqm 71"))
    assert ActionKind.REPORT_UNHEALTHY not in kinds(v), "the new episode gets its full grace period"
    v = d.step(after=1.5, qmgr=ENDED_N)
    assert ActionKind.REPORT_UNHEALTHY in kinds(v)


def test_going_away_wins_over_a_pause() -> None:
    d = Driver()
    d.up()
    v = d.step(after=1, qmgr=R, paused=True, going_away=True)
    assert v.state is State.STOPPING


def test_a_deliberate_end_waits_the_delay_to_the_second_and_a_crash_does_not() -> None:
    d = Driver(deliberate_end_delay=2.0)
    d.up()
    v = d.step(after=1, qmgr=ENDED_N)
    assert v.actions == [] and any("mqguard pause" in n for n in v.notes)
    assert d.m.next_deadline(d.clock.monotonic()) == pytest.approx(d.clock.monotonic() + 2.0)
    assert d.step(after=1.999, qmgr=ENDED_N).actions == []
    assert kinds(d.step(after=0.001, qmgr=ENDED_N)) == [ActionKind.BRING_UP]
    # started by someone else within the delay: adopted, nothing started
    d2 = Driver()
    d2.up()
    d2.step(after=1, qmgr=ENDED_N)
    v = d2.step(after=1, qmgr=R)
    assert v.state is State.RUNNING and v.actions == []
    d3 = Driver()
    d3.up()
    assert kinds(d3.step(after=1, qmgr=CRASHED)) == [ActionKind.BRING_UP], "a crash is restarted at once"


def test_warm_pool_completes_the_launch_hook_once_storage_is_ready_and_never_starts() -> None:
    d = Driver()
    v = d.step(storage=False, warm=True)
    assert v.state is State.WARM and v.actions == []
    v = d.step(after=1, warm=True)
    assert kinds(v) == [ActionKind.WARM_READY]
    for _ in range(100):
        assert d.step(after=5, warm=True).actions == []
    v = d.step(after=1)  # InService
    assert kinds(v) == [ActionKind.BRING_UP]
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=R, result=JobResult(JobOutcome.UP, "started"))
    assert ActionKind.MQ_READY in kinds(v), "the launch hook is completed again once MQ is healthy"


def test_a_switchover_is_not_a_bad_episode() -> None:
    d = Driver(multi_instance=True)
    d.up()
    v = d.step(after=1, qmgr=QmStatus.RUNNING_ELSEWHERE, stage=JobStage.SWITCHING)
    assert v.actions == [] and d.m.bad_since is None
    v = d.step(after=2, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "switched over"))
    assert v.state is State.STANDBY and v.healthy and d.m.episode == 0


# -- the pause record --------------------------------------------------------------------

def test_pause_record_round_trip_and_expiry_at_the_second(tmp_path: Path) -> None:
    owners = allowed_owners()
    now = time.time()
    record = Pause(until=now + 600, reason="fix pack", by="root (uid 0) on h", since=now)
    pause_mod.write(str(tmp_path), owners, record)
    assert pause_mod.read(str(tmp_path), owners) == record
    assert record.active(now + 599.999) and not record.active(now + 600)
    assert pause_mod.clear(str(tmp_path), owners) and not pause_mod.clear(str(tmp_path), owners)
    assert pause_mod.read(str(tmp_path), owners) is None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 2, "until": 1, "since": 1}',
                                  '{"version": 1, "until": "soon", "since": 1}', '{"version": 1, "until": true}',
                                  '{"version": 1, "until": 1, "since": 1, "reason": 5}'])
def test_a_garbled_pause_record_is_no_pause(text: str) -> None:
    with pytest.raises(ValueError):
        pause_mod.parse(text)


def test_pause_record_control_characters_are_escaped() -> None:
    doc = {"version": 1, "until": time.time() + 5, "since": time.time(), "reason": "a\nb\x1b[31m", "by": "x"}
    assert "\n" not in pause_mod.parse(json.dumps(doc)).reason


def test_pause_watch_never_blocks_and_keeps_the_last_value_while_efs_hangs() -> None:
    record = Pause(until=time.time() + 3600, reason="", by="x", since=time.time())
    gate = threading.Event()
    answers: List[Optional[Pause]] = [record]

    def reader(path: str, owners: object) -> Optional[Pause]:
        if not answers:
            gate.wait(10)  # EFS hangs
            return None
        return answers.pop()

    changes: List[int] = []
    watch = PauseWatch("/efs", frozenset({0}), lambda: changes.append(1), reader=reader)  # type: ignore[arg-type]
    watch.refresh()
    for _ in range(100):
        if watch.current is not None:
            break
        time.sleep(0.01)
    assert watch.current == record and changes == [1]
    began = time.monotonic()
    for _ in range(50):
        watch.refresh()  # the read hangs: at most one outstanding, never waited for
    assert time.monotonic() - began < 5 and watch.current == record  # blocking would be the whole hang (30 s)
    gate.set()


# -- /active and /standby in every state -------------------------------------------------

def snap(state: State, status: Optional[str], listener: Optional[bool] = True, going_away: bool = False) -> Snapshot:
    return Snapshot(version="x", qmgr="QM1", state=state.value, healthy=state in (State.RUNNING, State.STANDBY),
                    qmgr_status=status, qmgr_detail="", storage_path="/efs", storage_ok=True, storage_detail="",
                    listener_port=1414, listener_ok=listener, bad_since=None, bad_seconds=0, restarts=0,
                    reported_unhealthy=False, last_cycle=100.0, cycle_at=100.0, verdict="", going_away=going_away)


@pytest.mark.parametrize("state,status,listener,going_away,active,standby", [
    (State.RUNNING, "running", True, False, True, False),
    (State.STANDBY, "running_as_standby", None, False, False, True),
    (State.STARTING, "starting", None, False, False, False),
    (State.RECOVERING, "ended_unexpectedly", None, False, False, False),
    (State.RECOVERING, "running", False, False, False, False),  # listener down while active
    (State.FAILED, "running", True, False, False, False),
    (State.STOPPING, "running", True, True, False, False),  # going away: drain
    (State.PAUSED, "running", True, False, True, False),  # maintenance, but MQ serves
    (State.PAUSED, "ended_normally", None, False, False, False),
    (State.WARM, None, None, False, False, False),
    (State.WAITING_FOR_STORAGE, None, None, False, False, False),
])
def test_role_endpoints_in_every_state(state: State, status: Optional[str], listener: Optional[bool],
                                       going_away: bool, active: bool, standby: bool) -> None:
    s = snap(state, status, listener, going_away)
    assert role_verdict(s, "active", 30, 110)[0] is active
    assert role_verdict(s, "standby", 30, 110)[0] is standby
    assert role_verdict(replace(s, cycle_at=10.0), "active", 30, 110)[0] is False  # a stalled loop says no
    assert role_verdict(None, "active", 30, 110)[0] is False


def test_a_standby_that_takes_over_before_any_cycle_saw_it_still_gets_its_mqsc() -> None:
    d = Driver(multi_instance=True)
    assert kinds(d.step(qmgr=QmStatus.RUNNING_ELSEWHERE)) == [ActionKind.BRING_UP]
    d.step(after=0.1, qmgr=QmStatus.RUNNING_ELSEWHERE, stage=JobStage.STARTING)
    # the job started a standby, and the active host died before the next observation
    v = d.step(after=0.3, qmgr=R, result=JobResult(JobOutcome.UP, "standby instance started", standby=True))
    assert ActionKind.APPLY_MQSC in kinds(v), v.line


def test_pause_write_never_follows_a_link_planted_at_its_temporary_name(tmp_path: Path) -> None:
    import os
    import socket

    owners = allowed_owners()
    (tmp_path / ".mqguard").mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / ".mqguard" / f".pause.{socket.gethostname()}.{os.getpid()}")
    record = Pause(until=time.time() + 10, reason="r", by="b", since=time.time())
    pause_mod.write(str(tmp_path), owners, record)
    assert victim.read_text() == "keep me" and pause_mod.read(str(tmp_path), owners) == record


def test_an_unknown_control_operation_is_refused_not_taken_for_a_switchover() -> None:
    """Issue 18 item 7: Operations.handle sent every op it did not know to switchover."""
    from mqguard.serve.control import OPERATIONS, ControlOp, Peer, Request
    from mqguard.serve.operations import Operations

    asked: List[object] = []
    ops = Operations(cfg=lambda: None, control=None, watch=None, owners=frozenset(),  # type: ignore[arg-type]
                     wake=lambda: None, ask=lambda ask, timeout: (asked.append(ask), (True, "?"))[1])
    ok, message = ops.handle(Request("reboot", Peer(pid=1, uid=0, gid=0)))
    assert not ok and "unknown operation" in message and asked == []
    ok, message = ops.handle(Request("drill", Peer(pid=1, uid=0, gid=0), {"kind": "meltdown"}))
    assert not ok and "unknown drill" in message and asked == [], "a kind that is no Drill never reaches the loop"
    assert OPERATIONS == tuple(op.value for op in ControlOp) == ("pause", "resume", "switchover", "drill")


def test_the_status_line_names_every_state_and_never_says_stopping_for_one_it_does_not_know() -> None:
    """Issue 18 item 7: _state_line printed "stopping" for any state it had no branch for."""
    from mqguard.supervisor.snapshot import summary_line

    firsts = {}
    for state in State:
        line = summary_line(snap(state, "running"), 5.0, "10m", "autoscaling")
        assert line.startswith("stopping") == (state is State.STOPPING), (state, line)
        firsts[state] = line
    assert len(set(firsts.values())) == len(State), "each state reads differently"
    odd = replace(snap(State.RUNNING, "running"), state="drilling")
    assert "drilling" in summary_line(odd, 5.0, "10m", "autoscaling")
    assert not summary_line(odd, 5.0, "10m", "autoscaling").startswith("stopping")


def test_the_snapshot_is_composed_from_explicit_inputs_not_from_the_daemon() -> None:
    """Issue 18 item 3: publish.compose(d) took the whole daemon (an import cycle behind TYPE_CHECKING)."""
    import inspect

    from mqguard.supervisor import publish
    from mqguard.supervisor.publish import Facts, News, compose

    assert "TYPE_CHECKING" not in inspect.getsource(publish) and "Daemon" not in inspect.getsource(publish)
    d = Driver()
    d.up()
    v = d.step(after=1, qmgr=R)
    obs = None  # before the first observation is published
    pause = Pause(until=2_000_000_000.0, reason="fix pack", by="root", since=1_700_000_000.0)
    facts = Facts(qmgr="QM1", storage_path="/MQHA", listener_port=1414, multi_instance=False,
                  mount_timeout=600.0, started=d.clock.monotonic() - 10)
    news = News(wall=1_700_000_100.0, monotonic=d.clock.monotonic(), report_mode="log", pause=pause,
                going_away=False, aws_error=None, reported=False, report_check="report = log", controller_pid=42,
                cycles=7, state_dir_ok=True, state_dir_detail="", mq_errors=[])
    snap = compose(d.m, obs, v, facts, news)
    assert snap.state == "running" and snap.cycles == 7 and snap.controller_pid == 42 and snap.healthy
    assert snap.paused is not None and snap.paused.reason == "fix pack"
    assert snap.summary.startswith("PAUSED until")


def test_the_next_cycle_is_due_at_the_earliest_of_poll_watchdog_and_deadline() -> None:
    from mqguard.supervisor.cycleguard import next_due

    assert next_due(100.0, 5.0, None, None) == 105.0
    assert next_due(100.0, 5.0, 2.0, None) == 102.0, "twice per WatchdogSec"
    assert next_due(100.0, 5.0, None, 101.0) == pytest.approx(101.01), "a grace period or pause ending"
    assert next_due(100.0, 5.0, 2.0, 150.0) == 102.0


def test_each_member_of_the_control_group_has_slots_of_its_own() -> None:
    """Security round 3 (low): the members shared 4 slots, so any mqm process holding silent connections locked
    every other member (and the operator) out of pause and resume."""
    from mqguard.serve.control import MAX_HANDLERS, MEMBER_HANDLERS, ControlServer

    server = ControlServer("/nonexistent/mqguard.sock", "mqm", lambda req: (True, ""))
    assert all(server._take_slot(1000) for _ in range(MEMBER_HANDLERS))
    assert not server._take_slot(1000), "one member is bounded"
    assert server._take_slot(1001) and server._take_slot(0), "other members and root are not locked out"
    server._give_back(1000)
    assert server._take_slot(1000)
    taken = MEMBER_HANDLERS + 1
    for uid in range(2000, 2000 + MAX_HANDLERS):  # the total stays bounded however many users there are
        taken += server._take_slot(uid)
    assert taken == MAX_HANDLERS
