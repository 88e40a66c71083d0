"""Carrying out the machine's actions: jobs on the worker, reports, lifecycle hooks.

Each action is one effect; whether to take it was decided by the machine.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Dict

from mqguard.config import Config
from mqguard.mq.pidwatch import find_controller
from mqguard.mq.service import Role, immediate_end, role_seen
from mqguard.supervisor.machine import Action, ActionKind, Machine
from mqguard.supervisor.model import Drill
from mqguard.supervisor.parts import Effectors

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _Effect:
    """One action being carried out, with what carrying it out needs."""

    p: Effectors
    cfg: Config
    machine: Machine
    action: Action
    role: Role
    going_away: str

    @property
    def name(self) -> str:
        return self.cfg.queue_manager.name


def execute(p: Effectors, cfg: Config, machine: Machine, action: Action, role: Role, going_away: str) -> None:
    EFFECTS[action.kind](_Effect(p, cfg, machine, action, role, going_away))


def _job(e: _Effect) -> None:
    """A job on the worker; a taken worker gives the action back to the machine (it asks again)."""
    p, prepared, kind = e.p, e.machine.prepared, e.action.kind
    job, body, said = {
        ActionKind.BRING_UP: ("bring-up", lambda stage: p.jobs.bring_up(stage, prepared), "bringing it up ({})"),
        ActionKind.APPLY_MQSC: ("mqsc", p.jobs.apply_mqsc, "{}; applying MQSC"),
        ActionKind.END_FOR_TERMINATION: ("terminate",
                                         lambda stage: p.jobs.terminate(stage, e.role, e.going_away, prepared),
                                         "{}: ending it cleanly"),
    }[kind]
    log.info("queue manager %s: %s", e.name, said.format(e.action.reason))
    if not p.worker.submit(job, body):
        log.info("a job is still running: %s waits for it (%s)", job, e.action.reason)
        e.machine.not_begun(kind)


def _report(e: _Effect) -> None:
    p, reason = e.p, e.action.reason
    p.diagnostics.collect("the Unhealthy decision")
    if p.hooks is not None and p.hooks.launch_pending():
        # still launching: the instance never served; abandoning replaces it now, not at the hook's timeout
        p.hooks.abandon_launch(reason)
        if p.signal is not None:
            p.signal.send(False, reason)
        return
    episode = e.machine.episode
    p.reporter.report(reason, lambda: e.machine.still_bad(episode))


def _hold(e: _Effect) -> None:
    log.error("queue manager %s held for an operator: %s", e.name, e.action.reason)
    _keep_launch(e)


def _keep_launch(e: _Effect) -> None:
    if e.p.hooks is not None:
        e.p.hooks.keep_launch_alive(e.action.reason)


def _complete_termination(e: _Effect) -> None:
    log.warning("queue manager %s: %s", e.name, e.action.reason)
    if e.p.hooks is not None:
        threading.Thread(target=e.p.hooks.complete_termination, name="termination-hook", daemon=True).start()


def _ready(e: _Effect) -> None:
    if e.p.hooks is not None:
        e.p.hooks.complete_launch(warm=e.action.kind == ActionKind.WARM_READY)
    if e.action.kind == ActionKind.MQ_READY and e.p.signal is not None:
        e.p.signal.send(True, e.action.reason)


def _drill(e: _Effect) -> None:
    ask = e.action.ask
    if ask is not None and ask.drill is not None:
        drill(e.p, e.cfg, ask.drill, e.role, ask.who)


def _switchover(e: _Effect) -> None:
    ask, p = e.action.ask, e.p
    if ask is None:
        return
    if not p.worker.submit("switchover", lambda stage: p.jobs.switchover(stage, ask.standby, ask.say, ask.done)):
        ask.done(False, "refused: mqguard is busy with another job (a start or MQSC); try again in a moment")
        return
    p.history.record("switchover", f"asked by {ask.who}")


EFFECTS: Dict[ActionKind, Callable[[_Effect], None]] = {
    ActionKind.BRING_UP: _job, ActionKind.APPLY_MQSC: _job, ActionKind.END_FOR_TERMINATION: _job,
    ActionKind.REPORT_UNHEALTHY: _report, ActionKind.HOLD: _hold, ActionKind.KEEP_LAUNCH: _keep_launch,
    ActionKind.COMPLETE_TERMINATION: _complete_termination, ActionKind.MQ_READY: _ready,
    ActionKind.WARM_READY: _ready, ActionKind.DRILL: _drill, ActionKind.SWITCHOVER: _switchover,
}


def drill(p: Effectors, cfg: Config, kind: Drill, role: Role, who: str = "?") -> None:
    """Inject the failure a drill asked for (the machine accepted it), marked in the history first (with who)."""
    name = cfg.queue_manager.name
    p.history.record("drill", f"{kind.value}, asked by {who}")
    log.warning("DRILL %s on queue manager %s, asked by %s", kind.value, name, who)
    if kind == Drill.CRASH:
        # killing the execution controller ends the queue manager abnormally: dspmq then says "Ended
        # unexpectedly" (reference: strmqm/amqzxma0; the simulator's amqzxma0 does the same)
        pid = find_controller(name, bin_dir=cfg.queue_manager.mq_bin_dir, owners=p.owners)
        if pid is None:
            log.warning("drill crash: no amqzxma0 of %s found; nothing killed", name)
            return
        os.kill(pid, signal.SIGKILL)
        log.warning("drill crash: killed amqzxma0 (pid %d)", pid)
    elif kind == Drill.STOP:  # the machine expects this end as a failure (no waiting for an operator's strmqm)
        def end() -> None:
            # -s while dspmq -x lists a standby (without it the standby ends too), else -r; -x on a standby
            mode = immediate_end(role_seen(p.control.dspmq(instances=True), role))
            p.control.endmqm(mode, cfg.queue_manager.stop_timeout)
        threading.Thread(target=end, name="drill-endmqm", daemon=True).start()
    elif kind == Drill.UNHEALTHY:
        p.reporter.report(f"drill: an operator asked for an Unhealthy report of queue manager {name}")
