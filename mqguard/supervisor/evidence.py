"""Which history events one cycle produced (docs/operating.md, "Failover evidence"), decided from what changed.

Pure: the observation, the verdict and the machine's episode marks before and after
the step go in, ``(event, detail)`` pairs come out; the daemon hands them to the
history writer. Events from jobs, operations and shutdown are recorded where they
happen (``created``, ``start_issued``, ``ended``, ``switchover``, ``drill``,
``stopped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from mqguard.mq.nativeha import NhaStatus
from mqguard.mq.status import QmStatus
from mqguard.supervisor.model import JobStage, Observation, Verdict

UP = (QmStatus.RUNNING, QmStatus.RUNNING_AS_STANDBY, QmStatus.REPLICA, QmStatus.NEGOTIATING)
REPLICAS = (QmStatus.REPLICA, QmStatus.NEGOTIATING)
ENDED_BY_SOMEONE = (QmStatus.ENDED_NORMALLY, QmStatus.ENDED_IMMEDIATELY, QmStatus.ENDED_PRE_EMPTIVELY)
PASSING = (QmStatus.STARTING, QmStatus.QUIESCING, QmStatus.ENDING_IMMEDIATELY, QmStatus.ENDING_PRE_EMPTIVELY)
Event = Tuple[str, str]


@dataclass(frozen=True)
class Marks:
    """The machine's episode bookkeeping, read before and after a step."""

    episode: int
    bad: bool
    restarts: int


class Evidence:
    """Remembers what the last cycles showed, so each event is said once per change."""

    def __init__(self) -> None:
        self.status: Optional[QmStatus] = None  # the last status dspmq gave (None while it was not asked)
        self.storage_ok: Optional[bool] = None
        self.paused = False
        self.going_away: Optional[str] = None
        self.dry_runs = 0
        self.elections = ElectionWatch()
        self.backdated: List[Tuple[str, str, float]] = []  # (event, detail, monotonic moment): taken by the daemon

    def cycle(self, obs: Observation, verdict: Verdict, before: Marks, after: Marks, dry_runs: int,
              going_away: Optional[str]) -> List[Event]:
        out: List[Event] = []
        if obs.storage_ok and self.storage_ok is not True:
            out.append(("storage_ready", obs.storage_detail))
        self.storage_ok = obs.storage_ok
        if going_away is not None and self.going_away is None:
            out.append(("spot_notice" if going_away == "spot" else "termination_notice", ""))
        self.going_away = going_away
        out.extend(self._status(obs))
        said, earlier = self.elections.look(obs.nha, obs.qmgr, obs.now)
        out.extend(said)
        self.backdated.extend(earlier)
        if after.episode > before.episode:
            out.append(("bad", "; ".join(verdict.bad_reasons) or verdict.line))
        if after.restarts > before.restarts:
            out.append(("restart", f"local restart {after.restarts}"))
        if before.bad and not after.bad and verdict.healthy:
            out.append(("good", verdict.line))
        # a report AWS accepted is recorded by the reporter itself, then flushed (the instance goes away next)
        if dry_runs > self.dry_runs:
            out.append(("reported", "report = log: Auto Scaling was not told (dry run)"))
        self.dry_runs = dry_runs
        if obs.paused != self.paused:
            out.append(("paused" if obs.paused else "resumed", ""))
            self.paused = obs.paused
        return out

    def _status(self, obs: Observation) -> List[Event]:
        new, old = obs.qmgr, self.status
        if new is None or new == old or (new in PASSING and old in UP):
            return []  # not asked, no change, or on its way (quiescing, ending): the status it ends in speaks
        self.status = new
        if new == QmStatus.RUNNING:
            if old in REPLICAS:
                return []  # a Native HA election: ElectionWatch says it, with the outage
            return [("takeover", "the standby became active")] if old == QmStatus.RUNNING_AS_STANDBY else \
                [("running", "")]
        if new == QmStatus.RUNNING_AS_STANDBY:
            return [("standby", "")]
        if new == QmStatus.REPLICA:
            return [("standby", "Native HA replica")] if old not in REPLICAS else []
        if new == QmStatus.NEGOTIATING:
            return []  # the instances are electing: what they elect is said when it is known
        said = new.value.replace("_", " ")
        if old not in UP:
            return []
        if new in ENDED_BY_SOMEONE and obs.job_stage == JobStage.SWITCHING:
            return [("ended", f"dspmq: {said} by mqguard's own switchover")]
        if new in ENDED_BY_SOMEONE:
            return [("ended", f"dspmq: {said} (endmqm, not by mqguard)")]
        if new == QmStatus.RUNNING_ELSEWHERE and obs.job_stage is not None:
            return [("ended", f"dspmq: {said} after mqguard's own {obs.job_stage.value}")]  # e.g. a switchover
        # ended unexpectedly (what a killed amqzxma0 leaves, reference: strmqm); or "Running elsewhere": another
        # host's instance is active while nobody here asked for it (reference: dspmq -x, the status on a host
        # with no instance of a running multi-instance queue manager); or a status MQ cannot give
        return [("crash", f"dspmq: {said}")]


class ElectionWatch:
    """Native HA elections as this host sees them (``dspmq -o nativeha -x``): the active instance lost (said at
    the moment it was last seen, so the outage starts when an active last served) and an instance elected. Each
    host keeps its own history on its own storage: the host whose instance is elected has the exact outage; the
    others see the election at their next look."""

    def __init__(self) -> None:
        self.me = ""  # this host's instance name, once dspmq said it
        self.active: Optional[str] = None  # the active instance as last seen
        self.seen_at = 0.0  # monotonic moment it was last seen active
        self.lost_at: Optional[float] = None  # the moment the last active was last seen, while none is

    def look(self, nha: Optional[NhaStatus], status: Optional[QmStatus],
             now: float) -> Tuple[List[Event], List[Tuple[str, str, float]]]:
        said: List[Event] = []
        earlier: List[Tuple[str, str, float]] = []
        if nha is None:
            if status is not None and not status.live and self.active is not None and self.active == self.me:
                self.lost_at, self.active = self.seen_at, None  # our own active ended: the status said "crash"
            return said, earlier
        self.me = nha.instance
        current = nha.instance if nha.role == "active" else next(
            (i.name for i in nha.instances if i.role == "active" and i.name != nha.instance), None)
        if current is None:
            if self.active is not None:
                earlier.append(self._lost(self.active))
                self.lost_at, self.active = self.seen_at, None
            return said, earlier
        if self.active is not None and current != self.active:  # lost and elected between two looks
            earlier.append(self._lost(self.active))
            self.lost_at = self.seen_at
        if current != self.active and self.lost_at is not None:
            gap = f"{now - self.lost_at:.1f}s without an active instance, as seen from here"
            said.append(("takeover", f"Native HA: this host's instance {current} elected active ({gap})")
                        if current == self.me else ("elected", f"Native HA: instance {current} elected active ({gap})"))
            self.lost_at = None
        elif current != self.active and current == self.me:
            said.append(("running", "Native HA: this host's instance is the active instance"))
        self.active, self.seen_at = current, now
        return said, earlier

    def _lost(self, active: str) -> Tuple[str, str, float]:
        self.lost_at = self.seen_at
        return ("active_lost", f"Native HA: active instance {active} lost (last seen active then; seen from "
                               f"{self.me})", self.seen_at)
