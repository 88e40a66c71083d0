"""The runner of MQ's control commands for a configuration: as ``[queue_manager] run_as``, checked here."""

from __future__ import annotations

import os

from mqguard.base.runner import CommandRunner, RunAs
from mqguard.config import Config, error_for


def build_runner(cfg: Config) -> CommandRunner:
    """The MQ command runner for ``cfg``; ConfigError when run_as cannot be used by this process."""
    user = cfg.queue_manager.run_as
    try:
        run_as = RunAs.lookup(user)
    except KeyError:
        raise error_for(cfg, "queue_manager", "run_as", user,
                        "expected an existing user (MQ's commands run as this user)") from None
    if run_as is not None and os.geteuid() != 0:
        raise error_for(cfg, "queue_manager", "run_as", user,
                        "expected empty or mqguard's own user: switching user needs root")
    return CommandRunner(run_as=run_as)
