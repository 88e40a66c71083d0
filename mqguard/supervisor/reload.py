"""What a SIGHUP may change while mqguard runs, decided purely.

``[health]`` and ``logging.level`` apply at once; everything else (the queue
manager, storage, AWS, metrics, the log format, and switching report = log to
autoscaling, which needs AWS clients built at start) waits for a restart of
mqguard, and the log says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Tuple

from mqguard.config import Config, ReportMode, StopOnExit
from mqguard.supervisor.machine import Settings

RESTART_ONLY = ("queue_manager", "storage", "aws", "metrics", "control", "hooks", "native_ha")


def settings_from(cfg: Config) -> Settings:
    return Settings(
        grace_period=cfg.health.grace_period,
        restart_attempts=cfg.health.restart_attempts,
        mount_timeout=cfg.storage.mount_timeout,
        start_timeout=cfg.queue_manager.start_timeout,
        multi_instance=cfg.queue_manager.multi_instance,
        listener_probe=cfg.queue_manager.listener_port > 0,
        restart_spacing=cfg.health.poll_interval,
        restart_limit=cfg.health.restart_limit,
        restart_window=cfg.health.restart_window,
        deliberate_end_delay=max(cfg.health.poll_interval, 2.0),
        lock_wait=cfg.queue_manager.lock_wait,
        leave_on_termination=cfg.queue_manager.stop_on_exit == StopOnExit.NEVER,
        drill_interval=cfg.control.drill_interval,
        native_ha=cfg.queue_manager.native_ha,
    )


def reloaded(current: Config, new: Config, can_report: bool) -> Tuple[Config, List[str]]:
    """(the configuration to run with, warnings about what waits for a restart)."""
    warnings: List[str] = []
    changed = [s for s in RESTART_ONLY if getattr(new, s) != getattr(current, s)]
    if changed:
        warnings.append(f"reload: changes in [{'], ['.join(changed)}] take effect after a restart of mqguard")
    if new.logging.format != current.logging.format:
        warnings.append("reload: logging.format takes effect after a restart of mqguard")
    health = new.health
    if health.report == ReportMode.AUTOSCALING and not can_report:
        warnings.append("reload: report = autoscaling takes effect after a restart of mqguard; still report = log")
        health = replace(health, report=ReportMode.LOG)
    return replace(current, health=health, logging=replace(new.logging, format=current.logging.format)), warnings
