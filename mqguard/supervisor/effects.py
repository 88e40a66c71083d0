"""Carrying out the machine's actions: jobs on the worker, reports, lifecycle hooks.

Each action is one effect; whether to take it was decided by the machine.
"""

from __future__ import annotations

import logging
import threading

from mqguard.mq.service import Role
from mqguard.supervisor.machine import Action, ActionKind, Machine
from mqguard.supervisor.parts import Parts

log = logging.getLogger(__name__)


def execute(p: Parts, machine: Machine, action: Action, role: Role, going_away: str) -> None:
    name = p.cfg.queue_manager.name
    jobs = {ActionKind.BRING_UP: ("bring-up", p.jobs.bring_up, "bringing it up ({})"),
            ActionKind.APPLY_MQSC: ("mqsc", p.jobs.apply_mqsc, "{}; applying MQSC"),
            ActionKind.END_FOR_TERMINATION: ("terminate", lambda stage: p.jobs.terminate(stage, role, going_away),
                                             "{}: ending it cleanly")}
    if action.kind in jobs:
        job, body, said = jobs[action.kind]
        log.info("queue manager %s: %s", name, said.format(action.reason))
        if not p.worker.submit(job, body):
            log.info("a job is still running: %s waits for it (%s)", job, action.reason)
            machine.not_begun(action.kind)
    elif action.kind == ActionKind.REPORT_UNHEALTHY:
        episode = machine.episode
        p.reporter.report(action.reason, lambda: machine.still_bad(episode))
        p.diagnostics.collect("the Unhealthy decision")
    elif action.kind == ActionKind.COMPLETE_TERMINATION:
        log.warning("queue manager %s: %s", name, action.reason)
        if p.hooks is not None:
            threading.Thread(target=p.hooks.complete_termination, name="termination-hook", daemon=True).start()
    elif action.kind in (ActionKind.MQ_READY, ActionKind.WARM_READY) and p.hooks is not None:
        p.hooks.complete_launch(warm=action.kind == ActionKind.WARM_READY)
