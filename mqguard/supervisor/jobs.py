"""The bodies of the worker's jobs: bring-up (prepare, start, MQSC), MQSC alone,
the clean end when the instance is going away, and an operator's switchover.

They block on MQ commands and EFS, so they run on the worker thread, never on
the supervision loop; each returns a ``JobResult`` that the machine reads.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from typing import Callable, List, Optional, Tuple

from mqguard.aws.lifecyclehooks import Hooks, heartbeat_interval
from mqguard.base.clock import Clock, SystemClock
from mqguard.base.durations import format_duration
from mqguard.base.telemetry import Telemetry
from mqguard.config import QueueManagerConfig
from mqguard.mq.control import StartResult
from mqguard.mq.level import LevelGuard
from mqguard.mq.lifecycle import Lifecycle, PrepareError
from mqguard.mq.nhaend import end_native_ha
from mqguard.mq.service import Role, end_with_escalation
from mqguard.mq.status import QmStatus
from mqguard.supervisor.model import JobOutcome, JobResult, JobStage
from mqguard.supervisor.worker import StageSetter

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, qm: QueueManagerConfig, lifecycle: Lifecycle, hooks: Optional[Hooks],
                 telemetry: Telemetry, wake: Callable[[], None],
                 record: Callable[[str, str], None] = lambda event, detail: None,
                 levels: Optional[LevelGuard] = None, clock: Optional[Clock] = None) -> None:
        self.qm = qm  # [queue_manager] is never changed by a reload
        self.lifecycle = lifecycle
        self.hooks = hooks
        self.telemetry = telemetry
        self.wake = wake
        self.record = record  # into the failover history (docs/operating.md, "Failover evidence")
        self.levels = levels  # never older MQ on newer data
        self.clock = clock or SystemClock()  # the switchover's waits and every duration the jobs measure
        self.before_start: List[Callable[[], object]] = []

    def bring_up(self, set_stage: StageSetter, prepared: bool = False) -> JobResult:
        """Prepare (unless the machine knows the queue manager is ``prepared`` here), then start."""
        name = self.qm.name
        if not prepared:
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
        set_stage(JobStage.STARTING)  # prepared: the loop observes dspmq from now on (machine.prepared_after)
        self.wake()
        return replace(self._start(set_stage), prepared=True)

    def _start(self, set_stage: StageSetter) -> JobResult:
        name = self.qm.name
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
        return JobResult(JobOutcome.UP, outcome.detail,
                         standby=outcome.result in (StartResult.STANDBY, StartResult.REPLICA))

    def apply_mqsc(self, set_stage: StageSetter, record_level: bool = True) -> JobResult:
        set_stage(JobStage.CONFIGURING)
        if record_level and self.levels is not None:  # a takeover: this installation runs it now
            self.levels.record()
        summary = self.lifecycle.apply_mqsc()
        self.telemetry.mqsc_failed(len(summary.failed))
        return JobResult(JobOutcome.UP, f"MQSC: {len(summary.applied)} applied, {len(summary.failed)} failed",
                         prepared=True)

    def terminate(self, set_stage: StageSetter, role: Role, why: str, prepared: bool = True) -> JobResult:
        """End MQ cleanly while the instance is still alive, then complete the termination hook."""
        set_stage(JobStage.ENDING)
        qm = self.qm
        log.warning("instance is going away (%s): ending queue manager %s", why, qm.name)
        ended = True
        if prepared:  # else there is no queue manager here to end
            beats = self.hooks.heartbeats(heartbeat_interval(qm.stop_timeout)) if self.hooks else nullcontext()
            began = self.clock.monotonic()
            with beats:
                ended = self.lifecycle.end(role, qm.stop_timeout)
            self.record("ended", f"for termination ({why}), {'cleanly' if ended else 'NOT ended'} "
                                 f"in {self.clock.monotonic() - began:.1f}s")
        if not ended:
            log.error("queue manager %s did not end even with endmqm -p", qm.name)
        if self.hooks is not None:
            self.hooks.complete_termination()
        return JobResult(JobOutcome.UP if ended else JobOutcome.FAILED, "ended for termination", prepared=prepared)

    def switchover(self, set_stage: StageSetter, standby: Tuple[str, ...],
                   say: Callable[[str], None] = lambda text: None,
                   done: Callable[[bool, str], None] = lambda ok, text: None) -> JobResult:
        """An operator's switchover (the machine accepted it): end the active instance here so that the standby
        takes over, then start a new standby here. ``say`` tells the operator each step; ``done`` their answer."""
        try:
            result, ok, message = self._switch(set_stage, standby, say)
        except Exception as exc:  # the operator is waiting for an answer whatever happens
            result, ok, message = JobResult(JobOutcome.FAILED, str(exc)), False, f"failed: {exc}"
        done(ok, message)
        return replace(result, prepared=True)

    def _switch(self, set_stage: StageSetter, standby: Tuple[str, ...],
                say: Callable[[str], None]) -> Tuple[JobResult, bool, str]:
        if self.qm.native_ha:
            return self._switch_native_ha(set_stage, standby, say)
        qm, control, clock = self.qm, self.lifecycle.control, self.clock
        set_stage(JobStage.SWITCHING)
        began = clock.monotonic()
        say(f"ending the active instance here: endmqm -s -w (after {format_duration(qm.stop_timeout)} -s -i, then "
            "-s -p: one long-lived client cannot stall it)")
        # Every end escalates, a switchover's too: -s -w, then -s -i and -s -p on stop_timeout, so one long-lived
        # client cannot keep this host quiescing (reference: endmqm); -s only while dspmq -x lists a standby.
        if not end_with_escalation(control, Role.ACTIVE_MI, qm.stop_timeout):
            still = control.dspmq().status == QmStatus.RUNNING
            return (JobResult(JobOutcome.UP if still else JobOutcome.FAILED, "endmqm -s did not end it"), False,
                    "endmqm -s, -s -i and -s -p did not end the queue manager"
                    + ("; this host is still active" if still else ""))
        say(f"ended here after {clock.monotonic() - began:.1f}s; waiting for {', '.join(standby) or 'another host'} "
            "to become active")
        deadline = clock.monotonic() + qm.stop_timeout
        other: Optional[str] = None
        while clock.monotonic() < deadline:  # bounded by stop_timeout
            reading = control.dspmq()
            if reading.status == QmStatus.RUNNING_ELSEWHERE:
                hosts = [i.host for i in reading.entry.instances if i.mode == "active"] if reading.entry else []
                other = ", ".join(hosts) or "another host"
                break
            clock.sleep(0.2)
        switched = clock.monotonic() - began
        say(f"{other} is active ({switched:.1f}s after endmqm -s); starting a new standby here" if other else
            f"no other host became active within {format_duration(qm.stop_timeout)}: starting it here again")
        start = self.lifecycle.service.start()  # a new standby here (or active again if nobody took over)
        if other is None:
            return (JobResult(JobOutcome.UP, "switchover: no other host became active"), False,
                    f"no other host became active within {qm.stop_timeout:.0f}s after endmqm -s; "
                    f"mqguard started the queue manager here again ({start.detail})")
        log.warning("switched over: %s is active %.2fs after endmqm -s; %s here", other, switched, start.detail)
        ok = start.result in (StartResult.STANDBY, StartResult.STARTED, StartResult.ALREADY_RUNNING)
        return (JobResult(JobOutcome.UP if ok else JobOutcome.FAILED, f"switched over to {other}"), True,
                f"switched over: {other} is active ({switched:.1f}s after endmqm -s); new standby here: "
                f"{start.detail}")

    def _switch_native_ha(self, set_stage: StageSetter, replicas: Tuple[str, ...],
                          say: Callable[[str], None]) -> Tuple[JobResult, bool, str]:
        """Native HA: endmqm -s on the active (a replica in sync is elected), then this instance starts again and
        rejoins as a replica (contract section 28)."""
        qm, control, clock = self.qm, self.lifecycle.control, self.clock
        set_stage(JobStage.SWITCHING)
        began = clock.monotonic()
        say(f"ending the active instance here: endmqm -s -w (after {format_duration(qm.stop_timeout)} -s -i, then "
            f"-s -p); an in-sync replica ({', '.join(replicas) or 'one of the others'}) is elected")
        if not end_native_ha(control, qm.stop_timeout, quorum_wait=0.0):
            return (JobResult(JobOutcome.UP, "endmqm -s did not end it"), False,
                    "endmqm -s did not end the active instance here (see the log)")
        ended = clock.monotonic() - began
        say(f"ended here after {ended:.1f}s; starting this instance again as a replica")
        start = self.lifecycle.service.start()
        other: Optional[str] = None
        deadline = clock.monotonic() + qm.stop_timeout
        while clock.monotonic() < deadline:  # bounded by stop_timeout
            nha, _ = control.nativeha()
            found = [i.name for i in nha.instances if i.role == "active" and i.name != nha.instance] if nha else []
            if found:
                other = found[0]
                break
            clock.sleep(0.2)
        switched = clock.monotonic() - began
        if other is None:
            return (JobResult(JobOutcome.UP, "switchover: no other instance seen active"), False,
                    f"no other instance was seen active within {qm.stop_timeout:.0f}s; this instance: "
                    f"{start.detail}")
        log.warning("switched over: Native HA instance %s is active %.2fs after endmqm -s; here: %s", other,
                    switched, start.detail)
        ok = start.result in (StartResult.REPLICA, StartResult.STARTED, StartResult.ALREADY_RUNNING)
        return (JobResult(JobOutcome.UP if ok else JobOutcome.FAILED, f"switched over to {other}"), True,
                f"switched over: instance {other} is active ({switched:.1f}s after endmqm -s); this instance "
                f"rejoined: {start.detail}")
