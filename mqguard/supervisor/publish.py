"""The machine's state, the last observation and verdict, and what the daemon's parts know,
composed into the Snapshot that /status, /healthz, /active, /standby, metrics and systemd's
STATUS= serve. Pure: every input is explicit (``Facts`` and ``News``), nothing reaches into the daemon."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional

from mqguard import __version__
from mqguard.base.durations import format_duration
from mqguard.efs.pause import Pause
from mqguard.mq.status import counts_healthy
from mqguard.supervisor.machine import Machine, Observation, Verdict
from mqguard.supervisor.snapshot import Snapshot, nha_view, summary_line


@dataclass(frozen=True)
class Facts:
    """What stays true for the life of the process: the configuration's restart-only names, the start."""

    qmgr: str
    storage_path: str
    listener_port: int
    multi_instance: bool
    mount_timeout: float
    started: float  # monotonic moment mqguard started
    native_ha: bool = False


@dataclass(frozen=True)
class News:
    """What changes from one publication to the next: clocks, the parts' own news, reloadable settings."""

    wall: float  # now, Unix time
    monotonic: float  # now, monotonic
    report_mode: str
    pause: Optional[Pause]  # the pause in force, if any
    going_away: bool
    aws_error: Optional[Dict[str, Any]]
    reported: bool
    report_check: str
    controller_pid: Optional[int]
    cycles: int
    state_dir_ok: Optional[bool]
    state_dir_detail: str
    mq_errors: List[Dict[str, Any]]


def compose(m: Machine, obs: Optional[Observation], verdict: Optional[Verdict], f: Facts, o: News) -> Snapshot:
    wall_offset = o.wall - o.monotonic
    snap = Snapshot(
        version=__version__,
        qmgr=f.qmgr,
        state=(verdict.state if verdict else m.state).value,
        healthy=bool(verdict and verdict.healthy),
        qmgr_status=obs.qmgr.value if (obs and obs.qmgr) else None,
        qmgr_detail=obs.qmgr_detail if obs else "",
        storage_path=f.storage_path,
        storage_ok=bool(obs and obs.storage_ok),
        storage_detail=obs.storage_detail if obs else "not checked yet",
        listener_port=f.listener_port,
        listener_ok=obs.listener_ok if obs else None,
        bad_since=None if m.bad_since is None else m.bad_since + wall_offset,
        bad_seconds=m.bad_seconds(o.monotonic),
        restarts=m.restarts_total,
        restart_budget_remaining=m.budget_remaining(o.monotonic),
        aws_error=o.aws_error,
        reported_unhealthy=o.reported,
        last_cycle=o.wall if obs else None,
        composed_at=o.monotonic,
        cycle_at=o.monotonic if obs else None,
        verdict=verdict.line if verdict else "starting up",
        bad_reasons=list(verdict.bad_reasons) if verdict else [],
        controller_pid=o.controller_pid,
        cycles=o.cycles,
        report_check=o.report_check,
        qmgr_healthy=bool(obs and counts_healthy(obs.qmgr, f.multi_instance, f.native_ha)),
        native_ha=f.native_ha,
        storage_checked=None if obs is None or obs.storage_checked_at is None else obs.storage_checked_at + wall_offset,
        nha=nha_view(obs.nha) if obs else None,
        paused=o.pause,
        going_away=o.going_away,
        state_dir_ok=o.state_dir_ok,
        state_dir_detail=o.state_dir_detail,
        mq_errors=o.mq_errors,
    )
    return replace(snap, summary=summary_line(snap, o.monotonic - f.started, format_duration(f.mount_timeout),
                                              o.report_mode))
