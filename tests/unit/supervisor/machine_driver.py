"""Drives the pure state machine with a fake clock (shared by the machine's unit tests)."""

from __future__ import annotations

from typing import List, Optional

from mqguard.mq.nativeha import NhaStatus
from mqguard.mq.status import QmStatus
from mqguard.supervisor.machine import (
    ActionKind,
    JobOutcome,
    JobResult,
    JobStage,
    Machine,
    Observation,
    Settings,
    State,
    Verdict,
)
from tests.fakes import FakeClock

R = QmStatus.RUNNING
ENDED = QmStatus.ENDED_UNEXPECTEDLY
UP = JobResult(JobOutcome.UP, "started")
FAILED = JobResult(JobOutcome.FAILED, "strmqm exit 71")


class Driver:
    def __init__(self, **overrides: object) -> None:
        base = dict(
            grace_period=60.0, restart_attempts=3, mount_timeout=600.0, start_timeout=300.0,
            multi_instance=False, listener_probe=True, restart_spacing=5.0,
        )
        base.update(overrides)
        self.clock = FakeClock()
        self.m = Machine(Settings(**base), started_at=self.clock.monotonic())  # type: ignore[arg-type]
        self.verdicts: List[Verdict] = []

    def step(
        self,
        after: float = 0.0,
        storage: bool = True,
        qmgr: Optional[QmStatus] = None,
        listener: Optional[bool] = None,
        stage: Optional[JobStage] = None,
        result: Optional[JobResult] = None,
        going_away: bool = False,
        detail: str = "",
        paused: bool = False,
        warm: bool = False,
        everywhere: str = "",
        waiting: str = "",
        nha: Optional[NhaStatus] = None,
        rejected: str = "",
    ) -> Verdict:
        self.clock.advance(after)
        if listener is None and qmgr == R:
            listener = True
        v = self.m.step(
            Observation(
                now=self.clock.monotonic(), storage_ok=storage, storage_detail="probe timed out" if not storage else "",
                qmgr=qmgr, qmgr_detail=detail, listener_ok=listener, job_stage=stage, job_result=result,
                going_away=going_away, paused=paused, warm=warm, storage_shared_outage=everywhere,
                storage_peers_waiting=waiting, nha=nha, nha_rejected=rejected,
            )
        )
        self.verdicts.append(v)
        return v

    def up(self) -> None:
        """Storage appears, the first bring-up runs and the queue manager is running."""
        assert kinds(self.step()) == [ActionKind.BRING_UP]
        self.step(after=1, stage=JobStage.STARTING)
        v = self.step(after=1, qmgr=R, result=UP)
        assert v.state is State.RUNNING and v.healthy

    def reports(self) -> int:
        return sum(kinds(v).count(ActionKind.REPORT_UNHEALTHY) for v in self.verdicts)


def kinds(v: Verdict) -> List[ActionKind]:
    return [a.kind for a in v.actions]
