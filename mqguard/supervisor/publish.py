"""The daemon's last observation and verdict, composed into the Snapshot that /status,
/healthz, /active, /standby, metrics and systemd's STATUS= serve."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Optional

from mqguard import __version__
from mqguard.config.values import format_duration
from mqguard.mq.status import counts_healthy
from mqguard.supervisor.machine import Observation, Verdict
from mqguard.supervisor.snapshot import Snapshot, summary_line

if TYPE_CHECKING:
    from mqguard.supervisor.daemon import Daemon


def compose(d: Daemon, obs: Optional[Observation], verdict: Optional[Verdict]) -> Snapshot:
    m, cfg, clock = d.machine, d.cfg, d.clock
    wall_offset = clock.wall() - clock.monotonic()
    pause = d.paused
    snap = Snapshot(
        version=__version__,
        qmgr=cfg.queue_manager.name,
        state=(verdict.state if verdict else m.state).value,
        healthy=bool(verdict and verdict.healthy),
        qmgr_status=obs.qmgr.value if (obs and obs.qmgr) else None,
        qmgr_detail=obs.qmgr_detail if obs else "",
        storage_path=cfg.storage.path,
        storage_ok=bool(obs and obs.storage_ok),
        storage_detail=obs.storage_detail if obs else "not checked yet",
        listener_port=cfg.queue_manager.listener_port,
        listener_ok=obs.listener_ok if obs else None,
        bad_since=None if m.bad_since is None else m.bad_since + wall_offset,
        bad_seconds=m.bad_seconds(clock.monotonic()),
        restarts=m.restarts_total,
        restart_budget_remaining=m.budget_remaining(clock.monotonic()),
        aws_error=d.aws_errors.current(),
        reported_unhealthy=d.reporter.reported,
        last_cycle=clock.wall() if obs else None,
        verdict=verdict.line if verdict else "starting up",
        bad_reasons=list(verdict.bad_reasons) if verdict else [],
        controller_pid=d.watch.pid,
        cycles=d.cycles,
        report_check=d.reporter.preflight_result if d.autoscaling else "report = log",
        qmgr_healthy=bool(obs and counts_healthy(obs.qmgr, cfg.queue_manager.multi_instance)),
        paused=asdict(pause) if pause else None,
        going_away=d.going_away is not None,
        state_dir_ok=d.state_dir.ok,
        state_dir_detail=d.state_dir.detail,
        mq_errors=[{"time": m.time, "id": m.id, "text": m.text, "source": m.source} for m in d.diagnostics.recent()],
    )
    return replace(snap, summary=summary_line(
        snap, clock.monotonic() - d.started, format_duration(cfg.storage.mount_timeout), cfg.health.report.value,
    ))
