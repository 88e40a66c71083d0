"""Judging one observation (pure): what is bad about it, and what is only "not yet" (a start in
progress until start_timeout, another host's lock until lock_wait). It takes what the last
observations showed (``Seen``) and returns the judgement with what to remember next; the state
machine's rules act on the judgement."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from mqguard.base.durations import format_duration
from mqguard.mq.status import QmStatus, counts_healthy
from mqguard.supervisor.model import JobStage, Observation, Settings, State


@dataclass(frozen=True)
class Seen:
    """What judging remembers between observations."""

    last_status: Optional[QmStatus] = None  # the last status dspmq gave
    ended_from_live: bool = False  # this observation saw it end (the one before it was up)
    deliberate_since: Optional[float] = None  # first seen ended normally/immediately (an operator's endmqm?)
    elsewhere_since: Optional[float] = None  # single instance: first seen "running elsewhere" (lock_wait)
    starting_since: Optional[float] = None  # first STARTING (or start job) seen


@dataclass(frozen=True)
class Judgement:
    """One observation judged: what is bad, and whether a start is still in progress. Made once, never changed."""

    bad: Tuple[str, ...]
    not_yet: bool
    active: bool
    healthy_qm: bool
    busy: bool  # a job runs (a start, MQSC, an end, a switchover)
    waiting: str = ""  # why this is "not yet" beyond a start (the lock wait)
    overran: str = ""  # a start past start_timeout: reported at once


@dataclass
class _Draft:
    """The judgement while it is being made (the helpers below add to it)."""

    bad: List[str]
    not_yet: bool = False
    waiting: str = ""
    overran: str = ""


def judge(obs: Observation, seen: Seen, s: Settings) -> Tuple[Judgement, Seen]:
    """What is bad about this observation, and what to remember for the next one."""
    status = obs.qmgr
    seen = track_status(seen, status)
    healthy_qm = counts_healthy(status, s.multi_instance, s.native_ha)
    active, busy = status == QmStatus.RUNNING, obs.job_stage is not None
    j = _Draft([])
    if not obs.storage_ok:
        j.bad.append(f"storage: {obs.storage_detail}")
    seen = _judge_queue_manager(obs, j, seen, s, busy and not healthy_qm, healthy_qm)
    # A switchover or a termination's end stops the listener first, while dspmq still says RUNNING for a
    # moment: that is the deliberate end in progress, not a fault (MQ ends its listeners as it quiesces)
    ending = obs.job_stage in (JobStage.SWITCHING, JobStage.ENDING)
    if active and s.listener_probe and obs.listener_ok is False and not ending:
        j.bad.append("listener not accepting connections")
    return Judgement(tuple(j.bad), j.not_yet, active, healthy_qm, busy, j.waiting, j.overran), seen


def track_status(seen: Seen, status: Optional[QmStatus]) -> Seen:
    """Remember what the status was and since when, before judging it."""
    was = seen.last_status
    return replace(
        seen,
        ended_from_live=bool(status is not None and status.ended and was is not None and was.live),
        last_status=status if status is not None else was,
        deliberate_since=seen.deliberate_since if status in (QmStatus.ENDED_NORMALLY, QmStatus.ENDED_IMMEDIATELY)
        else None,
        elsewhere_since=seen.elsewhere_since if status == QmStatus.RUNNING_ELSEWHERE else None,
    )


def _judge_queue_manager(obs: Observation, j: _Draft, seen: Seen, s: Settings, job_in_progress: bool,
                         healthy_qm: bool) -> Seen:
    """Starting (not yet, until start_timeout), waiting for another host's lock, or plainly bad."""
    status = obs.qmgr
    if status == QmStatus.STARTING or job_in_progress:  # a switchover's end, too
        since = obs.now if seen.starting_since is None else seen.starting_since
        starting_for = obs.now - since
        if starting_for < s.start_timeout:
            j.not_yet = True
        else:
            j.overran = f"queue manager still starting after {starting_for:.0f}s"
            j.bad.append(j.overran)
        return replace(seen, starting_since=since)
    seen = replace(seen, starting_since=None)
    if status == QmStatus.RUNNING_ELSEWHERE and not s.multi_instance:
        return _waiting_for_lock(obs, j, seen, s)
    if obs.storage_ok and status is None:
        j.bad.append(f"queue manager: {obs.qmgr_detail or 'status unknown'}")
    elif status is not None and not healthy_qm:
        j.bad.append(f"queue manager {status.value}")
    return seen


def _waiting_for_lock(obs: Observation, j: _Draft, seen: Seen, s: Settings) -> Seen:
    """Single instance, "running elsewhere": another host (or a dead host's NFS lock, held until its lease
    expires) has the queue manager. Wait up to lock_wait ("not yet"); past it, it counts as bad."""
    since = obs.now if seen.elsewhere_since is None else seen.elsewhere_since
    waited = obs.now - since
    if waited < s.lock_wait:
        j.not_yet = True
        j.waiting = ("waiting for the queue manager's lock: it runs elsewhere (another host, or a dead host's "
                     f"stale lock) for up to lock_wait {format_duration(s.lock_wait)}")
    else:
        j.bad.append(f"queue manager running elsewhere (past lock_wait {format_duration(s.lock_wait)})")
    return replace(seen, elsewhere_since=since)


def native_ha_role(obs: Observation, active: bool) -> Tuple[State, List[str]]:
    """A Native HA instance that runs is healthy whatever its role (contract section 28): the state says which
    role, and a lost quorum is said (it is the group's, not this host's: nothing here can cure it, so no
    episode, no restart, no report)."""
    nha = obs.nha
    notes: List[str] = []
    cut_off = [i.name for i in nha.instances if i.name != nha.instance and not i.linked] if nha else []
    if nha is not None and nha.role == "unknown" and cut_off:
        why = (f"MQ rejects them: {obs.nha_rejected}: the three hosts' [native_ha] instances and heartbeats, and "
               "the mqm UID, must be the same" if obs.nha_rejected else "check that they run, that the replication "
               "ports are open between the three, and that the three hosts' [native_ha] settings are the same "
               "(MQ's error log says AMQ3209E for a mismatch)")
        notes.append(f"Native HA instance {nha.instance} is not connected to {', '.join(cut_off)}: {why}")
    if nha is not None and not nha.quorum_held:
        have, of = nha.quorum
        notes.append(f"Native HA quorum lost ({have}/{of} in sync): no instance can be active until a majority "
                     "runs again; this host's instance keeps running and waits")
    if active:
        return State.RUNNING, notes
    if nha is not None and nha.role == "replica" and nha.insync:
        return State.REPLICA, notes
    return State.REPLICA_BEHIND, notes
