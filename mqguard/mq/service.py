"""How the queue manager is started and ended: as mqguard's child, or in its own systemd unit.

``ChildService`` runs strmqm/endmqm itself (no systemd: tests, containers, a
hand run). ``UnitService`` asks systemd to start and stop ``mq@NAME.service``,
whose ExecStart/ExecStop (``mq-unit``) run the same strmqm and the same endmqm
escalation; mqguard then never runs strmqm outside that unit. A queue manager
that was started by hand (outside the unit) is still ended directly.
"""

from __future__ import annotations

import enum
import logging
from typing import List, Mapping, Optional, Protocol, Tuple

from mqguard.base.runner import CommandRunner
from mqguard.config import Config, error_for
from mqguard.efs.statedir import allowed_owners
from mqguard.mq.control import (
    ENDMQM_NO_QMGR,
    ENDMQM_NOT_RUNNING,
    MqControl,
    StartOutcome,
    StartResult,
    StatusReading,
    classify_strmqm_code,
)
from mqguard.mq.leftovers import clear_leftovers
from mqguard.mq.nhaend import end_native_ha
from mqguard.mq.prepare import Preparation, Prepared, PrepareError, prepared_from_exit
from mqguard.mq.status import QmStatus
from mqguard.mq.unit import ACTIVE_STATES, PREPARE_TEMPLATE, SystemdUnit, covers, resolve, unit_name

log = logging.getLogger(__name__)

# Escalation steps after "endmqm -w" has used stop_timeout: each gets this long.
ESCALATION_STEP_TIMEOUT = 30.0
# systemctl itself on top of what the unit's commands may take
SYSTEMCTL_MARGIN = 30.0


class Role(str, enum.Enum):
    """How this host's instance is ended (endmqm's options differ)."""

    ACTIVE = "active"  # single instance: endmqm -w
    ACTIVE_MI = "active_mi"  # multi-instance active: endmqm -s -w (switch over to a standby if there is one)
    STANDBY = "standby"  # multi-instance standby: endmqm -x (the active instance stays)


def role_of(status: Optional[QmStatus], multi_instance: bool) -> Role:
    if not multi_instance:
        return Role.ACTIVE
    return Role.STANDBY if status == QmStatus.RUNNING_AS_STANDBY else Role.ACTIVE_MI


def role_seen(reading: StatusReading, assumed: Role) -> Role:
    """The role ``dspmq -x`` shows: a standby here is ended alone (-x); an active hands over (-s) only when a
    standby instance is listed, else it ends with -r (reference: endmqm — decide -s from dspmq -x, never from an
    exit code). When dspmq cannot say, the role that was assumed stands."""
    if reading.status == QmStatus.RUNNING_AS_STANDBY:
        return Role.STANDBY
    if reading.entry is None:
        return assumed
    standby = any(i.mode == "standby" for i in reading.entry.instances)
    return Role.ACTIVE_MI if standby else Role.ACTIVE


def longest_end(stop_timeout: float) -> float:
    """The most an escalated end may take: -w for stop_timeout, then -i and -p."""
    return stop_timeout + 2 * ESCALATION_STEP_TIMEOUT


def escalation(role: Role, stop_timeout: float) -> List[Tuple[List[str], float]]:
    """endmqm's steps for ``role``: (options, timeout) each.

    - a multi-instance active keeps ``-s`` on EVERY step: endmqm without -s ends
      every instance, the standby included (reference: endmqm), so an escalation
      that dropped it would take the pair down instead of failing over;
    - a single instance ends with ``-r`` on every step: reconnectable clients
      then reconnect to wherever the queue manager comes back (IBM's container
      ends with ``-w -r``; every end mqguard makes is one the clients should
      survive: termination, spot, host shutdown, a drill);
    - a standby ends alone with ``-x``.
    With long-lived clients ``-w`` always runs out, so the -i step is the normal path.
    """
    role = Role(role)
    if role == Role.STANDBY:
        return [(["-x"], stop_timeout)]
    extra = ["-s"] if role == Role.ACTIVE_MI else ["-r"]
    return [(extra + ["-w"], stop_timeout), (extra + ["-i"], ESCALATION_STEP_TIMEOUT),
            (extra + ["-p"], ESCALATION_STEP_TIMEOUT)]


def immediate_end(role: Role) -> List[str]:
    """endmqm's options to end ``role``'s instance at once, with the same care as an escalation: -s kept on a
    multi-instance active (without it the standby ends too), -x alone for a standby, -r for a single instance."""
    steps = [mode for mode, _ in escalation(role, 0.0)]
    return next((mode for mode in steps if "-i" in mode), steps[0])


def end_with_escalation(control: MqControl, role: Role, stop_timeout: float, quorum_wait: float = 0.0) -> bool:
    """End this host's instance, escalated to -i then -p (not a standby). True when it ended.

    Every end escalates, a switchover's included: one long-lived client cannot stall ``-s -w``. Whether ``-s``
    applies is read from ``dspmq -x`` before the first step and again after a step with ``-s`` failed (the
    standby may have gone meanwhile); ``role`` is only what the caller assumed. A Native HA instance (the
    configuration says so, or dspmq shows a replica) is ended as nhaend.py says."""
    reading = control.dspmq(instances=True)
    if control.qm.native_ha or reading.status in (QmStatus.REPLICA, QmStatus.NEGOTIATING):
        return end_native_ha(control, stop_timeout, quorum_wait)
    role = role_seen(reading, Role(role))
    step = 0
    rechecked = False
    while step < len(escalation(role, stop_timeout)):
        mode, timeout = escalation(role, stop_timeout)[step]
        res = control.endmqm(mode, timeout)
        if res.ok((0,)):
            log.info("queue manager %s ended (endmqm %s)", control.name, " ".join(mode))
            return True
        if res.returncode in (ENDMQM_NOT_RUNNING, ENDMQM_NO_QMGR):
            log.info("queue manager %s was not running (endmqm exit %s)", control.name, res.returncode)
            return True
        if "-s" in mode and not rechecked:
            rechecked = True
            seen = role_seen(control.dspmq(instances=True), role)
            if seen != role:
                log.warning("endmqm %s did not end %s (%s): dspmq -x now shows %s; ending it as such",
                            " ".join(mode), control.name, res.describe(), seen.value)
                role = seen
                continue  # the same step, with the options the new role asks for
        log.warning("endmqm %s did not end %s: %s; escalating", " ".join(mode), control.name, res.describe())
        step += 1
    return False


class QueueManagerService(Protocol):
    description: str

    def prepare(self) -> Prepared:
        """Make the queue manager known on this host (crtmqdir, addmqinf or crtmqm); PrepareError if not."""

    def start(self) -> StartOutcome:
        """Start the queue manager (it is known not to be running here)."""

    def end(self, role: Role, stop_timeout: float) -> bool:
        """End it now and wait; True when it ended."""

    def end_after_exit(self, role: Role, stop_timeout: float) -> bool:
        """End it at mqguard's own exit (a unit is ended by systemd once mqguard has stopped)."""


class ChildService:
    """strmqm and endmqm run by mqguard itself: the queue manager lives in mqguard's cgroup."""

    def __init__(self, control: MqControl, preparation: Preparation, quorum_wait: float = 0.0) -> None:
        self.control = control
        self.preparation = preparation
        self.quorum_wait = quorum_wait  # Native HA: how long an end that would break quorum waits
        self.description = "as mqguard's child (no systemd unit)"

    def prepare(self) -> Prepared:
        return self.preparation.run()

    def start(self) -> StartOutcome:
        clear_leftovers(self.control.name, self.control.qm.mq_bin_dir, owners=allowed_owners(self.control.qm.run_as))
        return self.control.strmqm()

    def end(self, role: Role, stop_timeout: float) -> bool:
        return end_with_escalation(self.control, role, stop_timeout, self.quorum_wait)

    def end_after_exit(self, role: Role, stop_timeout: float) -> bool:
        return self.end(role, stop_timeout)


class UnitService:
    """The queue manager in ``mq@NAME.service``, started and stopped through systemd."""

    def __init__(self, control: MqControl, unit: SystemdUnit, prepare_unit: SystemdUnit,
                 quorum_wait: float = 0.0) -> None:
        self.control = control
        self.quorum_wait = quorum_wait
        self.unit = unit
        self.prepare_unit = prepare_unit
        self.description = f"in {unit.name}"
        self._warned = False

    def prepare(self) -> Prepared:
        """crtmqdir, addmqinf and crtmqm run in mq-prepare@NAME.service: MQ creates setgid directories and
        briefly starts the queue manager, which mqguard's sandbox (RestrictSUIDSGID=, LimitNOFILE=1024) forbids."""
        name = self.prepare_unit.name
        budget = self.control.qm.start_timeout + 2 * self.control.command_timeout + SYSTEMCTL_MARGIN
        res = self.prepare_unit.systemctl("start", budget)
        after = self.prepare_unit.show(self.control.command_timeout)
        if res.timed_out:
            raise PrepareError(f"systemctl start {name} did not finish within {budget:.0f}s", timed_out=True)
        if not res.ok():
            loaded = after is not None and after.load_state == "loaded"
            hint = f"see journalctl -u {name}" if loaded else f"is mq-prepare@.service installed? ({res.describe()})"
            code = f" (exit {after.main_status})" if after is not None and after.main_status is not None else ""
            raise PrepareError(f"{name} failed{code}: {hint}")
        done = prepared_from_exit(after.main_status if after is not None else None)
        self.control.locate()
        return done

    def start(self) -> StartOutcome:
        qm = self.control.qm
        state = self.unit.show(self.control.command_timeout)
        if state is None:
            return StartOutcome(StartResult.FAILED, f"cannot ask systemd about {self.unit.name}")
        if state.load_state != "loaded":
            return StartOutcome(StartResult.FAILED, f"{self.unit.name} is {state.load_state or 'unknown'} to systemd "
                                                    "(is the mq@.service template installed?)")
        storage = self.control.storage_path
        if not self._warned and not covers(state.mounts_for, storage):
            self._warned = True  # once: it is advice about the unit's drop-ins, not about this start
            log.warning("%s does not require the mount of %s (RequiresMountsFor=%s): at shutdown EFS may be "
                        "unmounted before the queue manager has ended; add it with `systemctl edit mq@`",
                        self.unit.name, storage, " ".join(state.mounts_for) or "nothing")
        # Activating: a start (log replay) is under way, perhaps from before a restart of mqguard:
        # "start" joins that job; anything else would abort the replay. Active although dspmq says the
        # queue manager is not running: what is left of a crash. A restart runs the unit's stop (which
        # ends those processes, then SIGKILL for leftovers) before strmqm.
        verb = "restart" if state.active_state in ACTIVE_STATES and state.active_state != "activating" else "start"
        budget = qm.start_timeout + SYSTEMCTL_MARGIN + (longest_end(qm.stop_timeout) if verb == "restart" else 0)
        res = self.unit.systemctl(verb, budget)
        if res.ok():
            reading = self.control.dspmq()
            if reading.status == QmStatus.RUNNING_AS_STANDBY:
                return StartOutcome(StartResult.STANDBY, f"standby instance started in {self.unit.name}")
            if reading.status in (QmStatus.REPLICA, QmStatus.NEGOTIATING) and qm.native_ha:
                return StartOutcome(StartResult.REPLICA, f"Native HA replica started in {self.unit.name}")
            return StartOutcome(StartResult.STARTED, f"started in {self.unit.name}")
        if res.timed_out:
            return StartOutcome(StartResult.FAILED, f"systemctl {verb} {self.unit.name} did not finish within "
                                                    f"{budget:.0f}s", timed_out=True)
        if res.returncode is None or res.returncode < 0:  # interrupted (mqguard is stopping): the start goes on
            return StartOutcome(StartResult.FAILED, f"systemctl {verb} {self.unit.name} was interrupted "
                                                    f"({res.outcome}); the unit's start goes on without mqguard")
        after = self.unit.show(self.control.command_timeout)
        code = after.start_status if after is not None else None
        if code is None:
            return StartOutcome(StartResult.FAILED, f"{res.describe()} (see journalctl -u {self.unit.name})")
        outcome = classify_strmqm_code(code, qm.multi_instance, qm.native_ha)
        return StartOutcome(outcome.result, f"{self.unit.name}: strmqm {outcome.detail} "
                                            f"(see journalctl -u {self.unit.name})")

    def end(self, role: Role, stop_timeout: float) -> bool:
        return self._stop_unit(role, stop_timeout, queue_only=False)

    def end_after_exit(self, role: Role, stop_timeout: float) -> bool:
        # mq@.service is ordered Before=mqguard.service: while mqguard itself is being
        # stopped, a stop job for the unit waits for mqguard to exit. So queue it and
        # go; systemd then runs the unit's ExecStop (endmqm -w, -i, -p).
        return self._stop_unit(role, stop_timeout, queue_only=True)

    def _stop_unit(self, role: Role, stop_timeout: float, queue_only: bool) -> bool:
        state = self.unit.show(self.control.command_timeout)
        if state is not None and state.active_state in ACTIVE_STATES:
            if queue_only:
                res = self.unit.systemctl("stop", self.control.command_timeout, no_block=True)
                done = f"will be ended by systemd stopping {self.unit.name} once mqguard has exited"
            else:
                res = self.unit.systemctl("stop", longest_end(stop_timeout) + SYSTEMCTL_MARGIN)
                done = f"ended: {self.unit.name} stopped (endmqm by its ExecStop)"
            if res.ok():
                log.info("queue manager %s %s", self.control.name, done)
                return True
            log.warning("%s did not stop: %s; ending the queue manager directly", self.unit.name, res.describe())
        # not (or no longer) in the unit: a queue manager started by hand, or systemd unreachable
        return end_with_escalation(self.control, role, stop_timeout, self.quorum_wait)


def build_service(cfg: Config, control: MqControl, env: Mapping[str, str],
                  preparation: Preparation) -> QueueManagerService:
    """The service for ``cfg`` (``queue_manager.unit``); ConfigError when its template is missing."""
    try:
        template = resolve(cfg.queue_manager.unit, env)
    except ValueError as exc:
        raise error_for(cfg, "queue_manager", "unit", cfg.queue_manager.unit, str(exc)) from None
    if template is None:
        return ChildService(control, preparation, cfg.native_ha.quorum_wait)
    # systemctl runs as mqguard's own user (polkit decides), whoever run_as is
    own = CommandRunner(base_env=control.runner.base_env, observers=control.runner.observers)
    name = cfg.queue_manager.name
    return UnitService(control, SystemdUnit(unit_name(template, name), own),
                       SystemdUnit(unit_name(PREPARE_TEMPLATE, name), own), cfg.native_ha.quorum_wait)
