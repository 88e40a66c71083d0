"""The bodies of the worker's jobs: bring-up (prepare, start, MQSC), MQSC alone,
and the clean end when the instance is going away.

They block on MQ commands and EFS, so they run on the worker thread, never on
the supervision loop; each returns a ``JobResult`` that the machine reads.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Callable, List, Optional

from mqguard.aws.lifecyclehooks import Hooks, heartbeat_interval
from mqguard.base.telemetry import Telemetry
from mqguard.config import QueueManagerConfig
from mqguard.mq.control import StartResult
from mqguard.mq.level import LevelGuard
from mqguard.mq.lifecycle import Lifecycle, PrepareError
from mqguard.mq.service import Role
from mqguard.supervisor.model import JobOutcome, JobResult, JobStage
from mqguard.supervisor.worker import StageSetter

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, qm: QueueManagerConfig, lifecycle: Lifecycle, hooks: Optional[Hooks],
                 telemetry: Telemetry, wake: Callable[[], None],
                 record: Callable[[str, str], None] = lambda event, detail: None,
                 levels: Optional[LevelGuard] = None) -> None:
        self.qm = qm  # [queue_manager] is never changed by a reload
        self.lifecycle = lifecycle
        self.hooks = hooks
        self.telemetry = telemetry
        self.wake = wake
        self.record = record  # into the failover history (contract §23)
        self.levels = levels  # never older MQ on newer data
        self.prepared = False  # the queue manager is known on this host (dspmqinf / addmqinf / crtmqm done)
        self.before_start: List[Callable[[], object]] = []

    def bring_up(self, set_stage: StageSetter) -> JobResult:
        name = self.qm.name
        if not self.prepared:
            set_stage(JobStage.PREPARING)
            try:
                done = self.lifecycle.prepare()
            except PrepareError as exc:
                log.error("cannot prepare queue manager %s: %s", name, exc)
                if exc.hold:  # trying again cannot help; a replacement would find the same: no report either
                    return JobResult(JobOutcome.FAILED, str(exc), hold=str(exc))
                return JobResult(JobOutcome.TIMED_OUT if exc.timed_out else JobOutcome.FAILED, str(exc))
            except OSError as exc:  # EFS trouble while looking for data or taking the lock
                log.error("cannot prepare queue manager %s: %s", name, exc)
                return JobResult(JobOutcome.FAILED, f"storage error while preparing: {exc}")
            log.info("queue manager %s is %s on this host", name, done)
            for event in ("created", "registered"):
                if done.startswith(event):
                    self.record(event, done)
            self.prepared = True
            self.wake()  # let the loop start observing dspmq now
        set_stage(JobStage.STARTING)
        refusal = self.levels.refusal() if self.levels is not None else None
        if refusal:
            log.error("queue manager %s is not started here: %s", name, refusal)
            return JobResult(JobOutcome.FAILED, refusal, hold=refusal, report_now=True)
        for hook in self.before_start:  # e.g. the MQI view drops its bindings connection (AMQ8041)
            hook()
        self.record("start_issued", "strmqm" + (" -x" if self.qm.multi_instance else ""))
        outcome = self.lifecycle.start()
        if outcome.result == StartResult.FAILED:
            log.error("start of queue manager %s failed: %s", name, outcome.detail)
            return JobResult(JobOutcome.TIMED_OUT if outcome.timed_out else JobOutcome.FAILED, outcome.detail)
        if outcome.result == StartResult.ELSEWHERE:
            log.warning("queue manager %s: %s; not fighting it", name, outcome.detail)
            return JobResult(JobOutcome.ELSEWHERE, outcome.detail)
        log.info("queue manager %s: %s", name, outcome.detail)
        if outcome.result in (StartResult.STARTED, StartResult.ALREADY_RUNNING) and self.levels is not None:
            self.levels.record()  # this installation runs it as the active instance: said before anything else
        if outcome.result == StartResult.STARTED:
            self.apply_mqsc(set_stage, record_level=False)
            return JobResult(JobOutcome.UP, outcome.detail, mqsc_applied=True)
        return JobResult(JobOutcome.UP, outcome.detail, standby=outcome.result == StartResult.STANDBY)

    def apply_mqsc(self, set_stage: StageSetter, record_level: bool = True) -> JobResult:
        set_stage(JobStage.CONFIGURING)
        if record_level and self.levels is not None:  # a takeover: this installation runs it now
            self.levels.record()
        summary = self.lifecycle.apply_mqsc()
        self.telemetry.mqsc_failed(len(summary.failed))
        return JobResult(JobOutcome.UP, f"MQSC: {len(summary.applied)} applied, {len(summary.failed)} failed")

    def terminate(self, set_stage: StageSetter, role: Role, why: str) -> JobResult:
        """End MQ cleanly while the instance is still alive, then complete the termination hook."""
        set_stage(JobStage.ENDING)
        qm = self.qm
        log.warning("instance is going away (%s): ending queue manager %s", why, qm.name)
        ended = True
        if self.prepared:
            beats = self.hooks.heartbeats(heartbeat_interval(qm.stop_timeout)) if self.hooks else nullcontext()
            began = time.monotonic()
            with beats:
                ended = self.lifecycle.end(role, qm.stop_timeout)
            self.record("ended", f"for termination ({why}), {'cleanly' if ended else 'NOT ended'} "
                                 f"in {time.monotonic() - began:.1f}s")
        if not ended:
            log.error("queue manager %s did not end even with endmqm -p", qm.name)
        if self.hooks is not None:
            self.hooks.complete_termination()
        return JobResult(JobOutcome.UP if ended else JobOutcome.FAILED, "ended for termination")
