"""Judging one observation: what is bad about it, and what is only "not yet" (a start in progress
until start_timeout, another host's lock until lock_wait). The state machine's rules act on the
judgement; this part only keeps the few memories a judgement needs (the last status, since when
it has been starting or running elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from mqguard.config.values import format_duration
from mqguard.mq.status import QmStatus, counts_healthy
from mqguard.supervisor.model import JobStage, Observation, Settings


@dataclass
class Judgement:
    """One observation judged: what is bad, and whether a start is still in progress."""

    bad: List[str]
    not_yet: bool
    active: bool
    healthy_qm: bool
    busy: bool
    waiting: str = ""  # why this is "not yet" beyond a start (the lock wait)
    overran: str = ""  # a start past start_timeout: reported at once


class Judging:
    """The judging half of the Machine (a mixin: the fields are the Machine's)."""

    settings: Settings
    last_status: Optional[QmStatus]
    ended_from_live: bool
    deliberate_since: Optional[float]
    elsewhere_since: Optional[float]
    starting_since: Optional[float]

    def _judge(self, obs: Observation) -> Judgement:
        """What is bad about this observation; a start in progress is "not yet" until start_timeout."""
        status = obs.qmgr
        self._track_status(status)
        healthy_qm = counts_healthy(status, self.settings.multi_instance)
        j = Judgement([], False, status == QmStatus.RUNNING, healthy_qm, obs.job_stage is not None)
        if not obs.storage_ok:
            j.bad.append(f"storage: {obs.storage_detail}")
        self._judge_queue_manager(obs, j)
        # A switchover or a termination's end stops the listener first, while dspmq still says RUNNING for a
        # moment: that is the deliberate end in progress, not a fault (MQ ends its listeners as it quiesces)
        ending = obs.job_stage in (JobStage.SWITCHING, JobStage.ENDING)
        if j.active and self.settings.listener_probe and obs.listener_ok is False and not ending:
            j.bad.append("listener not accepting connections")
        return j

    def _track_status(self, status: Optional[QmStatus]) -> None:
        """Remember what the status was and since when, before judging it."""
        was = self.last_status
        self.ended_from_live = bool(status is not None and status.ended and was is not None and was.live)
        if status is not None:
            self.last_status = status
        if status not in (QmStatus.ENDED_NORMALLY, QmStatus.ENDED_IMMEDIATELY):
            self.deliberate_since = None
        if status != QmStatus.RUNNING_ELSEWHERE:
            self.elsewhere_since = None

    def _judge_queue_manager(self, obs: Observation, j: Judgement) -> None:
        """Starting (not yet, until start_timeout), waiting for another host's lock, or plainly bad."""
        s, status = self.settings, obs.qmgr
        if status == QmStatus.STARTING or (j.busy and not j.healthy_qm):  # a switchover's end, too
            if self.starting_since is None:
                self.starting_since = obs.now
            starting_for = obs.now - self.starting_since
            if starting_for < s.start_timeout:
                j.not_yet = True
                return
            j.overran = f"queue manager still starting after {starting_for:.0f}s"
            j.bad.append(j.overran)
            return
        self.starting_since = None
        if status == QmStatus.RUNNING_ELSEWHERE and not s.multi_instance and self._waiting_for_lock(obs, j):
            return
        if obs.storage_ok and status is None:
            j.bad.append(f"queue manager: {obs.qmgr_detail or 'status unknown'}")
        elif status is not None and not j.healthy_qm:
            j.bad.append(f"queue manager {status.value}")

    def _waiting_for_lock(self, obs: Observation, j: Judgement) -> bool:
        """Single instance, "running elsewhere": another host (or a dead host's NFS lock, held until its lease
        expires) has the queue manager. Wait up to lock_wait ("not yet"); past it, it counts as bad."""
        if self.elsewhere_since is None:
            self.elsewhere_since = obs.now
        waited = obs.now - self.elsewhere_since
        if waited < self.settings.lock_wait:
            j.not_yet = True
            j.waiting = ("waiting for the queue manager's lock: it runs elsewhere (another host, or a dead host's "
                         f"stale lock) for up to lock_wait {format_duration(self.settings.lock_wait)}")
            return True
        j.bad.append(f"queue manager running elsewhere (past lock_wait {format_duration(self.settings.lock_wait)})")
        return True
