"""Whether to end the queue manager when mqguard itself stops.

``auto`` ends it only when the instance is going away, so that
``systemctl restart mqguard`` and package upgrades never take MQ down.
"""

from __future__ import annotations

import enum
import logging
import shutil
from dataclasses import dataclass
from typing import Tuple

from mqguard.base.runner import CommandRunner
from mqguard.config import StopOnExit

log = logging.getLogger(__name__)


def should_end_qmgr(
    mode: StopOnExit, host_stopping: bool = False, terminating: bool = False, spot_interruption: bool = False
) -> Tuple[bool, str]:
    """(end it?, why) — pure."""
    if mode == StopOnExit.ALWAYS:
        return True, "stop_on_exit = always"
    if mode == StopOnExit.NEVER:
        return False, "stop_on_exit = never"
    if terminating:
        return True, "the Auto Scaling group is terminating this instance"
    if spot_interruption:
        return True, "a spot interruption is announced"
    if host_stopping:
        return True, "the host is shutting down"
    return False, "stop_on_exit = auto and the instance is not going away"


def host_is_stopping(runner: CommandRunner) -> bool:
    """``systemctl is-system-running`` prints "stopping" during shutdown."""
    systemctl = shutil.which("systemctl")
    if not systemctl:
        return False
    # As ourselves, not as run_as: this asks systemd, not MQ.
    res = CommandRunner(base_env=runner.base_env).run([systemctl, "is-system-running"], 5.0, ok_codes=range(0, 256))
    return res.stdout.strip() == "stopping"


class JobAtExit(str, enum.Enum):
    FINISH_TERMINATION = "finish_termination"  # the clean end for termination is under way: let it finish
    CANCEL = "cancel"  # a start (strmqm, MQSC) must not still run when endmqm is sent
    DRAIN = "drain"  # let a running job finish for a while; MQ stays as it is


@dataclass(frozen=True)
class ExitPlan:
    job: JobAtExit
    end_qmgr: bool  # run the end escalation after the job
    say: str  # what to log about the queue manager


def exit_plan(end: bool, why: str, termination_begun: bool, worker_busy: bool, prepared: bool,
              qmgr: str) -> ExitPlan:
    """What mqguard does with a running job and the queue manager when it stops. Pure."""
    if termination_begun:
        job = JobAtExit.FINISH_TERMINATION
    elif end and worker_busy:
        job = JobAtExit.CANCEL
    else:
        job = JobAtExit.DRAIN
    if end and prepared and termination_begun:
        return ExitPlan(job, False, f"queue manager {qmgr} was already ended for the termination")
    if end and prepared:
        return ExitPlan(job, True, f"ending queue manager {qmgr}: {why}")
    return ExitPlan(job, False, f"leaving queue manager {qmgr} as it is: {why}")
