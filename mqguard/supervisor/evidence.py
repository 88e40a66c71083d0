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

from mqguard.mq.status import QmStatus
from mqguard.supervisor.model import Observation, Verdict

UP = (QmStatus.RUNNING, QmStatus.RUNNING_AS_STANDBY)
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
            return [("takeover", "the standby became active")] if old == QmStatus.RUNNING_AS_STANDBY else \
                [("running", "")]
        if new == QmStatus.RUNNING_AS_STANDBY:
            return [("standby", "")]
        said = new.value.replace("_", " ")
        if old not in UP:
            return []
        if new in ENDED_BY_SOMEONE:
            return [("ended", f"dspmq: {said} (endmqm, not by mqguard)")]
        if new == QmStatus.RUNNING_ELSEWHERE and obs.job_stage is not None:
            return [("ended", f"dspmq: {said} after mqguard's own {obs.job_stage.value}")]  # e.g. a switchover
        # ended unexpectedly (what a killed amqzxma0 leaves, reference: strmqm); or "Running elsewhere": another
        # host's instance is active while nobody here asked for it (reference: dspmq -x, the status on a host
        # with no instance of a running multi-instance queue manager); or a status MQ cannot give
        return [("crash", f"dspmq: {said}")]
