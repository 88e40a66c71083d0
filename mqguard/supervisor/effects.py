"""Carrying out the machine's actions: jobs on the worker, reports, lifecycle hooks.

Each action is one effect; whether to take it was decided by the machine.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from mqguard.config import Config
from mqguard.mq.pidwatch import find_controller
from mqguard.mq.service import Role, immediate_end, role_seen
from mqguard.supervisor.machine import Action, ActionKind, Machine
from mqguard.supervisor.model import Drill
from mqguard.supervisor.parts import Effectors

log = logging.getLogger(__name__)

def execute(p: Effectors, cfg: Config, machine: Machine, action: Action, role: Role, going_away: str) -> None:
    name = cfg.queue_manager.name
    prepared = machine.prepared
    jobs = {ActionKind.BRING_UP: ("bring-up", lambda stage: p.jobs.bring_up(stage, prepared), "bringing it up ({})"),
            ActionKind.APPLY_MQSC: ("mqsc", p.jobs.apply_mqsc, "{}; applying MQSC"),
            ActionKind.END_FOR_TERMINATION: ("terminate",
                                             lambda stage: p.jobs.terminate(stage, role, going_away, prepared),
                                             "{}: ending it cleanly")}
    if action.kind in jobs:
        job, body, said = jobs[action.kind]
        log.info("queue manager %s: %s", name, said.format(action.reason))
        if not p.worker.submit(job, body):
            log.info("a job is still running: %s waits for it (%s)", job, action.reason)
            machine.not_begun(action.kind)
    elif action.kind == ActionKind.REPORT_UNHEALTHY:
        p.diagnostics.collect("the Unhealthy decision")
        if p.hooks is not None and p.hooks.launch_pending():
            # still launching: the instance never served; abandoning replaces it now, not at the hook's timeout
            p.hooks.abandon_launch(action.reason)
            if p.signal is not None:
                p.signal.send(False, action.reason)
            return
        episode = machine.episode
        p.reporter.report(action.reason, lambda: machine.still_bad(episode))
    elif action.kind == ActionKind.HOLD:
        log.error("queue manager %s held for an operator: %s", name, action.reason)
        if p.hooks is not None:
            p.hooks.keep_launch_alive(action.reason)
    elif action.kind == ActionKind.KEEP_LAUNCH:
        if p.hooks is not None:
            p.hooks.keep_launch_alive(action.reason)
    elif action.kind == ActionKind.COMPLETE_TERMINATION:
        log.warning("queue manager %s: %s", name, action.reason)
        if p.hooks is not None:
            threading.Thread(target=p.hooks.complete_termination, name="termination-hook", daemon=True).start()
    elif action.kind == ActionKind.DRILL and action.ask is not None and action.ask.drill is not None:
        drill(p, cfg, action.ask.drill, role, action.ask.who)
    elif action.kind == ActionKind.SWITCHOVER and action.ask is not None:
        ask = action.ask
        if not p.worker.submit("switchover", lambda stage: p.jobs.switchover(stage, ask.standby, ask.say, ask.done)):
            ask.done(False, "refused: mqguard is busy with another job (a start or MQSC); try again in a moment")
            return
        p.history.record("switchover", f"asked by {ask.who}")
    elif action.kind in (ActionKind.MQ_READY, ActionKind.WARM_READY):
        if p.hooks is not None:
            p.hooks.complete_launch(warm=action.kind == ActionKind.WARM_READY)
        if action.kind == ActionKind.MQ_READY and p.signal is not None:
            p.signal.send(True, action.reason)


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
