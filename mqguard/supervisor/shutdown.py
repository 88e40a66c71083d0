"""The end of supervision: decide (``stopping.exit_plan``), then let a job finish or cancel
it, stop the background parts, and end the queue manager when the plan says so."""

from __future__ import annotations

import logging
import time

from mqguard.aws.termination import SPOT, TERMINATING
from mqguard.config import Config, StopOnExit
from mqguard.mq.service import Role
from mqguard.mq.status import QmStatus
from mqguard.supervisor.machine import Machine, prepared_after
from mqguard.supervisor.parts import Parts
from mqguard.supervisor.stopping import JobAtExit, exit_plan, host_is_stopping, should_end_qmgr

log = logging.getLogger(__name__)

JOB_DRAIN_TIMEOUT = 10.0  # at shutdown, how long to let a running job finish
HOST_RECORD_FLUSH = 1.0
HISTORY_FLUSH = 2.0  # the last events ("ended", "stopped") get this long to reach EFS
SHUTDOWN_IMDS_DEADLINE = 1.5  # per path: a slow IMDS must not hold up a stop (the answer then is "stays")


def shut_down(p: Parts, cfg: Config, machine: Machine, role: Role) -> int:
    s, a, loop = p.sense, p.act, p.loop
    qm = cfg.queue_manager
    mode = qm.stop_on_exit
    auto = mode == StopOnExit.AUTO
    if auto and s.termination is not None and s.termination.reason is None:
        s.termination.check(within=SHUTDOWN_IMDS_DEADLINE)  # one last, short look at IMDS
    kind = s.termination.kind if s.termination is not None else None
    end, why = should_end_qmgr(
        mode, host_stopping=auto and kind is None and host_is_stopping(a.runner),
        terminating=kind == TERMINATING, spot_interruption=kind == SPOT,
    )
    stage, result = a.worker.take()  # the loop is over: the worker's last news is read here
    prepared = prepared_after(machine.prepared, stage, result)
    plan = exit_plan(end, why, machine.termination_begun, a.worker.busy, prepared, qm.name)
    if plan.job == JobAtExit.FINISH_TERMINATION:
        drain = qm.stop_timeout + 70
        if not a.worker.join(drain):
            log.warning("the termination job is still running after %.0fs", drain)
    elif plan.job == JobAtExit.CANCEL:
        killed = a.runner.cancel_running()
        log.info("cancelling the running job before ending the queue manager (%d command(s) killed)", killed)
        a.worker.join(JOB_DRAIN_TIMEOUT)
        a.runner.resume()
    elif not a.worker.join(JOB_DRAIN_TIMEOUT):
        log.warning("a job is still running after %.0fs; leaving it (the queue manager stays as it is)",
                    JOB_DRAIN_TIMEOUT)
    loop.stop_event.set()
    log.info("%s", plan.say)
    if plan.end_qmgr:
        was_up = machine.last_status in (QmStatus.RUNNING, QmStatus.RUNNING_AS_STANDBY)
        began = time.monotonic()
        ended = a.lifecycle.end_after_exit(role, qm.stop_timeout)
        if was_up:  # a timed end: what --advise sizes stop_timeout by
            a.history.record("ended", f"as mqguard stopped ({why}), {'cleanly' if ended else 'NOT ended'} "
                                      f"in {time.monotonic() - began:.1f}s")
    a.history.record("stopped", plan.say)
    a.reporter.join(1.0)
    loop.watch.close()
    if not a.history.flush(HISTORY_FLUSH):
        log.warning("history: the last events were not written within %.0fs (EFS slow or hung)", HISTORY_FLUSH)
    if not loop.hosts.flush(HOST_RECORD_FLUSH):  # `mqguard list` shows this host stopping (then stale), not running
        log.debug("host record: the last state was not written within %.0fs", HOST_RECORD_FLUSH)
    log.info("mqguard stopped")
    return 0
