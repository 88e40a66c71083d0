"""What an operator asks over the control socket: pause, resume, switchover, drill (docs/operating.md).

Runs on the control socket's request threads, never on the supervision loop.
The pause is written to EFS under a deadline (a hung EFS gives a clear "no"),
then put in force at once and the loop woken. Drills and switchovers are
asks of the supervision loop: its machine accepts or refuses them; a switchover
then runs as a worker job (supervisor/jobs.py), like a start, so the loop keeps
observing while it happens; the request thread waits for its result.
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
from mqguard.mq.control import MqControl
from mqguard.mq.service import longest_end
from mqguard.mq.status import QmStatus
from mqguard.serve.control import ControlOp, Reply, Request
from mqguard.supervisor.model import Ask, Drill, OperatorAsk

log = logging.getLogger(__name__)

EFS_DEADLINE = 10.0  # to write or remove the pause record
ASK_TIMEOUT = 25.0  # for the loop to take a drill or switchover and answer it: within the CLI's 30 s


class Operations:
    def __init__(self, cfg: Callable[[], Config], control: MqControl, watch: PauseWatch, owners: FrozenSet[int],
                 wake: Callable[[], None],
                 wall: Callable[[], float] = time.time,
                 record: Callable[[str, str], None] = lambda event, detail: None,
                 ask: Callable[[OperatorAsk, float], Reply] = lambda ask, timeout: (False, "refused: no daemon"),
                 mount_point: bool = False) -> None:
        self.cfg = cfg
        self.control = control
        self.watch = watch
        self.owners = owners
        self.wake = wake
        self.wall = wall
        self.record = record  # into the failover history (docs/operating.md, "Failover evidence")
        self.efs = OneAtATime[object]("pause record write")  # a hung EFS: one stuck thread, not one per request
        self.ask = ask  # into the supervision loop: its machine accepts or refuses drills and switchovers
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
        try:
            drill = Drill(kind)
        except ValueError:
            return False, f"refused: unknown drill {str(kind)[:20]!r} ({', '.join(d.value for d in Drill)})"
        who = pause_mod.who(req.peer.uid)
        ok, message = self.ask(OperatorAsk(Ask.DRILL, who=who, drill=drill), ASK_TIMEOUT)
        if ok:
            log.warning("drill %s asked by %s", drill.value, who)
        return ok, message

    # ----------------------------------------------------------- switchover
    def _switchover_refusal(self, force: bool) -> Tuple[Optional[Reply], List[str], List[str]]:
        """Why this host cannot hand over now (or None), and the active and standby hosts dspmq -x lists."""
        if self.cfg().queue_manager.native_ha:
            return self._native_ha_refusal()
        if not self.cfg().queue_manager.multi_instance:
            single = (False, "refused: single-instance queue manager. To move it, replace this instance through "
                             "Auto Scaling (e.g. aws autoscaling terminate-instance-in-auto-scaling-group "
                             "--no-should-decrement-desired-capacity); the termination hook ends MQ cleanly first")
            return single, [], []
        reading = self.control.dspmq()
        entry = reading.entry
        active = [i.host for i in entry.instances if i.mode == "active"] if entry else []
        standby = [i.host for i in entry.instances if i.mode == "standby"] if entry else []
        if reading.status == QmStatus.RUNNING_AS_STANDBY:
            return (False, f"refused: this host runs the standby instance; run mqguard switchover on the active "
                           f"host ({', '.join(active) or 'see dspmq -x'})"), active, standby
        if reading.status != QmStatus.RUNNING:
            return (False, f"refused: the queue manager is not active here ({reading.error or reading.status})"), \
                active, standby
        if not standby and not force:
            return (False, "refused: no standby instance runs on another host (dspmq -x shows none); start one "
                           "there first, or use --force (the queue manager is then down until one starts it)"), \
                active, standby
        return None, active, standby

    def _native_ha_refusal(self) -> Tuple[Optional[Reply], List[str], List[str]]:
        """Native HA: only the active instance hands over (endmqm -s), and only to an in-sync replica, and only
        while ending it leaves a majority running (IBM: endmqm refuses otherwise)."""
        nha, why = self.control.nativeha()
        if nha is None:
            return (False, f"refused: the Native HA status is not known here ({why})"), [], []
        insync = [i.name for i in nha.instances if i.name != nha.instance and i.insync]
        active = [i.name for i in nha.instances if i.role == "active"]
        if nha.role != "active":
            return (False, f"refused: this host's instance {nha.instance} is a {nha.role}; run mqguard switchover "
                           f"on the active ({', '.join(active) or 'none elected now'})"), active, insync
        if not insync:
            return (False, "refused: no replica is in sync to take over (dspmq -o nativeha -x); wait for one"), \
                active, insync
        if nha.running_instances() < 3:
            return (False, f"refused: only {nha.running_instances()} of 3 instances run; ending the active now "
                           "would break the group's quorum (IBM: endmqm refuses). Bring the third back first"), \
                active, insync
        return None, active, insync

    def switchover(self, req: Request) -> Reply:
        qm = self.cfg().queue_manager
        force = bool(req.args.get("force"))
        refusal, active, standby = self._switchover_refusal(force)
        if refusal is not None:
            return refusal
        if req.args.get("check") is True:  # the CLI asks the operator with this, then asks again for real
            return True, (f"end the active instance of {qm.name} on this host ({', '.join(active) or 'here'}); "
                          + (f"the standby on {', '.join(standby)} takes over, clients reconnect to it"
                             if standby else "NO standby runs: the queue manager is down until one starts it"))
        outcome: List[Tuple[bool, str]] = []
        finished = threading.Event()

        def done(ok: bool, message: str) -> None:
            outcome.append((ok, message))
            finished.set()

        who = pause_mod.who(req.peer.uid)
        log.warning("switchover asked by %s%s", who, " (--force)" if force else "")
        ok, message = self.ask(OperatorAsk(Ask.SWITCHOVER, who=who + (" (--force)" if force else ""),
                                           standby=tuple(standby), say=req.say, done=done), ASK_TIMEOUT)
        if not ok:
            return ok, message
        finished.wait(longest_end(qm.stop_timeout) + qm.stop_timeout + qm.start_timeout + 30)
        return outcome[0] if outcome else (False, "still switching over; see mqguard status and the log")
