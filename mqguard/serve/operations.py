"""What an operator asks over the control socket: pause, resume, switchover, drill (sections 12, 13, 23).

Runs on the control socket's request threads, never on the supervision loop.
The pause is written to EFS under a deadline (a hung EFS gives a clear "no"),
then put in force at once and the loop woken. A switchover runs as a worker
job, like a start, so the loop keeps observing while it happens; the request
thread waits for its result to answer the operator.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, FrozenSet, List, Optional, Tuple

from mqguard.base.clock import iso_utc
from mqguard.base.durations import format_duration
from mqguard.base.offloop import OneAtATime
from mqguard.config import Config
from mqguard.efs import pause as pause_mod
from mqguard.efs.pause import Pause, PauseWatch
from mqguard.mq.control import MqControl, StartResult
from mqguard.mq.lifecycle import Lifecycle
from mqguard.mq.service import Role, end_with_escalation, longest_end
from mqguard.mq.status import QmStatus
from mqguard.serve.control import ControlOp, Reply, Request
from mqguard.supervisor.model import JobOutcome, JobResult, JobStage
from mqguard.supervisor.worker import StageSetter, Worker

log = logging.getLogger(__name__)

EFS_DEADLINE = 10.0  # to write or remove the pause record


class Operations:
    def __init__(self, cfg: Callable[[], Config], control: MqControl, lifecycle: Lifecycle, worker: Worker,
                 watch: PauseWatch, owners: FrozenSet[int], wake: Callable[[], None],
                 wall: Callable[[], float] = time.time,
                 record: Callable[[str, str], None] = lambda event, detail: None,
                 drill: Callable[[str, str], Reply] = lambda kind, who: (False, "refused: drills need the daemon"),
                 mount_point: bool = False) -> None:
        self.cfg = cfg
        self.control = control
        self.lifecycle = lifecycle
        self.worker = worker
        self.watch = watch
        self.owners = owners
        self.wake = wake
        self.wall = wall
        self.record = record  # into the failover history (contract §23)
        self.efs = OneAtATime[object]("pause record write")  # a hung EFS: one stuck thread, not one per request
        self.drill_request = drill
        self.mount_point = mount_point  # the pause record only on the mounted EFS, never under a bare mount point

    def handle(self, req: Request) -> Reply:
        try:
            op = ControlOp(req.op)
        except ValueError:
            return False, f"refused: unknown operation {req.op[:40]!r}"
        handlers = {ControlOp.PAUSE: self.pause, ControlOp.RESUME: self.resume, ControlOp.SWITCHOVER: self.switchover,
                    ControlOp.DRILL: self.drill}
        return handlers[op](req)

    # ---------------------------------------------------------------- pause
    def pause(self, req: Request) -> Reply:
        cfg = self.cfg()
        seconds, reason = req.args.get("seconds"), req.args.get("reason", "")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) \
                or seconds <= 0:
            return False, "bad request: seconds must be a positive, finite number"
        if not isinstance(reason, str):
            return False, "bad request: reason must be text"
        if seconds > cfg.control.pause_max:
            return False, (f"refused: {format_duration(seconds)} is longer than [control] pause_max "
                           f"({format_duration(cfg.control.pause_max)})")
        now = self.wall()
        record = Pause(until=now + seconds, reason=pause_mod.parse_reason(reason),
                       by=pause_mod.who(req.peer.uid), since=now)
        _, error = self.efs.run(
            lambda: pause_mod.write(cfg.storage.path, self.owners, record, mount_point=self.mount_point), EFS_DEADLINE)
        if error:
            return False, f"not paused: cannot write the pause record to {cfg.storage.path}/.mqguard: {error}"
        self.watch.set(record)
        log.warning("PAUSED until %s by %s%s: mqguard starts, ends, applies and reports nothing meanwhile",
                    iso_utc(record.until), record.by, f" ({record.reason})" if record.reason else "")
        self.wake()
        return True, f"paused until {iso_utc(record.until)}" + (f" ({record.reason})" if record.reason else "")

    def resume(self, req: Request) -> Reply:
        cfg = self.cfg()
        existed, error = self.efs.run(
            lambda: pause_mod.clear(cfg.storage.path, self.owners, mount_point=self.mount_point), EFS_DEADLINE)
        if error:
            return False, f"not resumed: cannot remove the pause record in {cfg.storage.path}/.mqguard: {error}"
        was = self.watch.current
        self.watch.set(None)
        self.wake()
        if not existed and was is None:
            return True, "was not paused"
        log.warning("resumed by %s: supervision starts again from a clean slate", pause_mod.who(req.peer.uid))
        return True, "resumed: supervision starts again from a clean slate"

    # ---------------------------------------------------------------- drill
    def drill(self, req: Request) -> Reply:
        kind = req.args.get("kind")
        if not isinstance(kind, str):
            return False, "bad request: kind must be crash, stop or unhealthy"
        who = pause_mod.who(req.peer.uid)
        ok, message = self.drill_request(kind, who)
        if ok:
            log.warning("drill %s asked by %s", kind, who)
        return ok, message

    # ----------------------------------------------------------- switchover
    def switchover(self, req: Request) -> Reply:
        cfg = self.cfg()
        qm = cfg.queue_manager
        if not qm.multi_instance:
            return False, ("refused: single-instance queue manager. To move it, replace this instance through "
                           "Auto Scaling (e.g. aws autoscaling terminate-instance-in-auto-scaling-group "
                           "--no-should-decrement-desired-capacity); the termination hook ends MQ cleanly first")
        reading = self.control.dspmq()
        entry = reading.entry
        active = [i.host for i in entry.instances if i.mode == "active"] if entry else []
        standby = [i.host for i in entry.instances if i.mode == "standby"] if entry else []
        if reading.status == QmStatus.RUNNING_AS_STANDBY:
            return False, (f"refused: this host runs the standby instance; run mqguard switchover on the active "
                           f"host ({', '.join(active) or 'see dspmq -x'})")
        if reading.status != QmStatus.RUNNING:
            return False, f"refused: the queue manager is not active here ({reading.error or reading.status})"
        force = bool(req.args.get("force"))
        if not standby and not force:
            return False, ("refused: no standby instance runs on another host (dspmq -x shows none); start one "
                           "there first, or use --force (the queue manager is then down until one starts it)")
        if req.args.get("check") is True:  # the CLI asks the operator with this, then asks again for real
            return True, (f"end the active instance of {qm.name} on this host ({', '.join(active) or 'here'}); "
                          + (f"the standby on {', '.join(standby)} takes over, clients reconnect to it"
                             if standby else "NO standby runs: the queue manager is down until one starts it"))
        outcome: List[Tuple[bool, str]] = []
        finished = threading.Event()

        def job(set_stage: StageSetter) -> JobResult:
            try:
                result, ok, message = self._switch(set_stage, standby, req.say)
            except Exception as exc:
                result, ok, message = JobResult(JobOutcome.FAILED, str(exc)), False, f"failed: {exc}"
            outcome.append((ok, message))
            finished.set()
            return result

        log.warning("switchover asked by %s%s", pause_mod.who(req.peer.uid), " (--force)" if force else "")
        if not self.worker.submit("switchover", job):
            return False, "refused: mqguard is busy with another job (a start or MQSC); try again in a moment"
        # recorded once it is under way (endmqm -s takes longer than this line to change what dspmq says)
        self.record("switchover", f"asked by {pause_mod.who(req.peer.uid)}" + (" (--force)" if force else ""))
        self.wake()
        finished.wait(longest_end(qm.stop_timeout) + qm.stop_timeout + qm.start_timeout + 30)
        return outcome[0] if outcome else (False, "still switching over; see mqguard status and the log")

    def _switch(self, set_stage: StageSetter, standby: List[str],
                say: Callable[[str], None] = lambda text: None) -> Tuple[JobResult, bool, str]:
        qm = self.cfg().queue_manager
        set_stage(JobStage.SWITCHING)
        began = time.monotonic()
        say(f"ending the active instance here: endmqm -s -w (after {format_duration(qm.stop_timeout)} -s -i, then "
            "-s -p: one long-lived client cannot stall it)")
        # Every end escalates, a switchover's too: -s -w, then -s -i and -s -p on stop_timeout, so one long-lived
        # client cannot keep this host quiescing (reference: endmqm); -s only while dspmq -x lists a standby.
        if not end_with_escalation(self.control, Role.ACTIVE_MI, qm.stop_timeout):
            reading = self.control.dspmq()
            still = reading.status == QmStatus.RUNNING
            return (JobResult(JobOutcome.UP if still else JobOutcome.FAILED, "endmqm -s did not end it"), False,
                    "endmqm -s, -s -i and -s -p did not end the queue manager"
                    + ("; this host is still active" if still else ""))
        say(f"ended here after {time.monotonic() - began:.1f}s; waiting for {', '.join(standby) or 'another host'} "
            "to become active")
        deadline = time.monotonic() + qm.stop_timeout
        other: Optional[str] = None
        while time.monotonic() < deadline:
            reading = self.control.dspmq()
            if reading.status == QmStatus.RUNNING_ELSEWHERE:
                hosts = [i.host for i in reading.entry.instances if i.mode == "active"] if reading.entry else []
                other = ", ".join(hosts) or "another host"
                break
            time.sleep(0.2)
        switched = time.monotonic() - began
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
