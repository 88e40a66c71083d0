"""Which history events a cycle produced (pure): each said once per change (contract §23)."""

from __future__ import annotations

from typing import List, Optional

from mqguard.mq.status import QmStatus
from mqguard.supervisor.evidence import Evidence, Marks
from mqguard.supervisor.model import JobStage, Observation, State, Verdict

CALM = Marks(episode=0, bad=False, restarts=0)


def verdict(healthy: bool = True, bad: Optional[List[str]] = None) -> Verdict:
    return Verdict(State.RUNNING if healthy else State.RECOVERING, healthy, bad or [], [], "line")


def step(e: Evidence, status: Optional[QmStatus], before: Marks = CALM, after: Marks = CALM, healthy: bool = True,
         storage_ok: bool = True, stage: Optional[JobStage] = None, paused: bool = False,
         dry_runs: int = 0, going: Optional[str] = None) -> List[str]:
    obs = Observation(now=1.0, storage_ok=storage_ok, qmgr=status, job_stage=stage, paused=paused)
    return [name for name, _ in e.cycle(obs, verdict(healthy, ["queue manager ended_unexpectedly"]), before,
                                        after, dry_runs, going)]


def test_a_life_in_events_each_said_once() -> None:
    e = Evidence()
    assert step(e, None) == ["storage_ready"]
    assert step(e, QmStatus.RUNNING) == ["running"]
    assert step(e, QmStatus.RUNNING) == []
    opened = Marks(episode=1, bad=True, restarts=0)
    assert step(e, QmStatus.ENDED_UNEXPECTEDLY, CALM, opened, healthy=False) == ["crash", "bad"]
    assert step(e, QmStatus.ENDED_UNEXPECTEDLY, opened, Marks(1, True, 1), healthy=False) == ["restart"]
    assert step(e, QmStatus.RUNNING, Marks(1, True, 1), Marks(1, False, 1)) == ["running", "good"]
    assert step(e, QmStatus.RUNNING, paused=True) == ["paused"]
    assert step(e, QmStatus.RUNNING) == ["resumed"]
    assert step(e, QmStatus.RUNNING, dry_runs=1) == ["reported"]
    assert step(e, QmStatus.RUNNING, dry_runs=1, going="terminating") == ["termination_notice"]


def test_how_the_queue_manager_stopped_running_names_the_event() -> None:
    e = Evidence()
    step(e, QmStatus.RUNNING)
    assert step(e, QmStatus.QUIESCING) == [], "passing states say nothing yet"
    assert step(e, QmStatus.ENDED_IMMEDIATELY) == ["ended"], "an endmqm is an end, not a crash"
    step(e, QmStatus.RUNNING_AS_STANDBY)
    assert step(e, QmStatus.RUNNING) == ["takeover"]
    assert step(e, QmStatus.RUNNING_ELSEWHERE, stage=JobStage.SWITCHING) == ["ended"], "our own switchover"
    step(e, QmStatus.RUNNING)
    assert step(e, QmStatus.RUNNING_ELSEWHERE) == ["crash"], "taken over while nobody here asked"
    assert step(e, None, storage_ok=False) == [] and step(e, None) == ["storage_ready"]
