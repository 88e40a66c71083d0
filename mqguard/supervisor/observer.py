"""One observation: the mount, the storage probe, the worker's news, dspmq, the listener,
the pause record and the instance's fate, gathered into an ``Observation`` for the machine.

Reads only; the one side effect is starting MQ's error-log watch once the queue manager
is known on this host, and collecting MQ's own diagnostics after a failed start.
"""

from __future__ import annotations

import logging
from typing import Optional

from mqguard.config import Config
from mqguard.efs.pause import Pause
from mqguard.efs.storage import check_mount
from mqguard.mq.nativeha import NhaStatus
from mqguard.mq.status import QmStatus
from mqguard.supervisor.machine import JobOutcome, Observation, prepared_after
from mqguard.supervisor.parts import Sensors

log = logging.getLogger(__name__)


def _cut_off(p: Sensors, nha: Optional[NhaStatus], now: float) -> str:
    """A Native HA instance with no role and peers not connected to it: MQ's error log says why (AMQ3209E when
    the hosts' configurations differ); read it every 10 s while that lasts, and hand on what it said."""
    if nha is None or nha.role != "unknown" or all(i.linked for i in nha.instances if i.name != nha.instance):
        return ""
    p.diagnostics.collect_every("the Native HA instance is not connected to its peers", 10.0, now)
    said = p.diagnostics.last("AMQ3209E")
    return f"AMQ3209E: {said}" if said else ""


def _native_ha(p: Sensors, cfg: Config, qmgr: Optional[QmStatus]) -> Optional[NhaStatus]:
    """dspmq -o nativeha -x while this host's Native HA instance runs (None otherwise, or when it does not say)."""
    if not (cfg.queue_manager.native_ha and qmgr is not None and qmgr.live):
        return None
    nha, why = p.control.nativeha()
    if nha is None:
        log.debug("dspmq -o nativeha: %s", why)
    return nha


def pause_in_force(p: Sensors) -> Optional[Pause]:
    pause = p.pause_watch.current
    return pause if pause is not None and pause.active(p.clock.wall()) else None


def going_away(p: Sensors) -> Optional[str]:
    """Why the instance is going away (termination, spot notice), if it is."""
    return p.termination.reason if p.termination is not None else None


def observe(p: Sensors, cfg: Config, prepared_before: bool) -> Observation:
    """One observation; ``prepared_before`` is the machine's fact, which this observation's job news may extend."""
    now = p.clock.monotonic()
    mount = check_mount(cfg.storage.path, cfg.storage.fstypes, p.mountinfo)
    storage_ok, storage_detail = mount.ok, mount.detail
    checked_at: Optional[float] = None
    if mount.ok:
        p.pause_watch.refresh()  # in the background; the last value read holds meanwhile
        probe = p.prober.probe(cfg.storage.probe_timeout)
        p.state_dir.update(probe.state_dir_ok, probe.state_dir_detail)
        if probe.seconds is not None:
            p.telemetry.probe(probe.seconds)
        storage_ok = probe.ok
        storage_detail = mount.detail if probe.ok else probe.detail
        checked_at = now + (probe.seconds or 0.0) if probe.ok else None
    stage, result = p.worker.take()
    prepared = prepared_after(prepared_before, stage, result)
    if prepared and not p.diagnostics.started:
        p.diagnostics.start()
    if result is not None and result.outcome in (JobOutcome.FAILED, JobOutcome.TIMED_OUT):
        p.diagnostics.collect(f"a failed start ({result.detail})")
    qmgr: Optional[QmStatus] = None
    if not storage_ok:
        qmgr_detail = "not checked while storage is bad"
    elif not prepared:
        qmgr_detail = "not prepared yet"
    else:
        reading = p.control.dspmq()
        qmgr, qmgr_detail = reading.status, reading.error
    listener = p.listener.probe() if qmgr == QmStatus.RUNNING and cfg.queue_manager.listener_port > 0 else None
    nha = _native_ha(p, cfg, qmgr)
    rejected = _cut_off(p, nha, now)
    pause = pause_in_force(p)
    p.peers.tick(storage_ok)  # in the background: the peers' records while good, their answers while bad
    shared, waiting = ("", "") if storage_ok else p.peers.verdict()
    return Observation(
        now=now, storage_ok=storage_ok, storage_detail=storage_detail, qmgr=qmgr, qmgr_detail=qmgr_detail,
        listener_ok=listener, job_stage=stage, job_result=result, going_away=going_away(p) is not None,
        paused=pause is not None, pause_ends=None if pause is None else pause.until - p.clock.wall() + now,
        warm=p.termination is not None and p.termination.warm,
        storage_shared_outage=shared, storage_peers_waiting=waiting, nha=nha, nha_rejected=rejected,
        storage_checked_at=checked_at,
    )
