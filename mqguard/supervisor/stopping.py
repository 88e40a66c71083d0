"""Whether to end the queue manager when mqguard itself stops.

``auto`` ends it only when the instance is going away, so that
``systemctl restart mqguard`` and package upgrades never take MQ down.
"""

from __future__ import annotations

import logging
import shutil
from typing import Tuple

from mqguard.config import StopOnExit
from mqguard.proc.runner import CommandRunner

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
