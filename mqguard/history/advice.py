"""Tuning advice from the history (pure): each recommended value with the observation
behind it and the current value, or "not enough history" rather than a guess."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

from mqguard.history.episodes import Episode, Start

MIN_STARTS = 3
MIN_RECOVERIES = 2
MIN_STOPS = 2
MIN_FAILOVERS = 1
_SECONDS = re.compile(r"\bin ([0-9]+(?:\.[0-9]+)?)\s?s\b")


@dataclass(frozen=True)
class Current:
    grace_period: float
    start_timeout: float
    stop_timeout: float
    lock_wait: float
    restart_attempts: int
    poll_interval: float
    asg_grace: Optional[float] = None  # --asg-grace: the group's HealthCheckGracePeriod
    hook_timeout: Optional[float] = None  # --hook-timeout: the lifecycle hooks' HeartbeatTimeout


@dataclass(frozen=True)
class Advice:
    setting: str
    current: Optional[float]
    recommended: Optional[float]  # None: not enough history
    because: str

    @property
    def verdict(self) -> str:
        if self.recommended is None:
            return "not enough history"
        if self.current is None or math.isclose(self.current, self.recommended):
            return "set" if self.current is None else "keep"
        return "raise" if self.recommended > self.current else "lower"

    def to_json(self) -> Dict[str, Any]:
        return {"setting": self.setting, "current": self.current, "recommended": self.recommended,
                "verdict": self.verdict, "because": self.because}


def _up(seconds: float, step: float = 5.0) -> float:
    return float(math.ceil(seconds / step) * step)


def _within(current: float, low: float, high: float, rec: float) -> float:
    """Keep the current value when it lies in [low, high]; else the recommendation."""
    return current if low <= current <= high else rec


# What the configuration accepts for each setting it holds (config/__init__.py's SCHEMA): advice is always a value
# the configuration takes, however the history was steered (the EFS is shared: anyone may have written it).
BOUNDS: Dict[str, Tuple[float, float]] = {
    "start_timeout": (1.0, 86400.0), "grace_period": (0.0, 86400.0), "stop_timeout": (1.0, 3600.0),
    "lock_wait": (0.0, 3600.0), "restart_attempts": (0.0, 1000.0),
}


def advise(episodes: List[Episode], starts: List[Start], ended_details: List[str], now: Current) -> List[Advice]:
    out = [_start_timeout(starts, now), _grace(episodes, now), _stop_timeout(ended_details, now),
           _lock_wait(episodes, starts, now), _restarts(episodes, now)]
    if now.asg_grace is not None:
        out.append(_asg_grace(episodes, now))
    if now.hook_timeout is not None:
        out.append(_hook_timeout(episodes, now))
    return [_bounded(a) for a in out]


def _bounded(a: Advice) -> Advice:
    """The advice clamped into what the configuration accepts, saying so when it had to."""
    bounds = BOUNDS.get(a.setting)
    if bounds is None or a.recommended is None or bounds[0] <= a.recommended <= bounds[1]:
        return a
    clamped = min(max(a.recommended, bounds[0]), bounds[1])
    return replace(a, recommended=clamped, because=f"{a.because} (the history asks for {a.recommended:g}, "
                                                     f"beyond what the configuration accepts)")


def _start_timeout(starts: List[Start], now: Current) -> Advice:
    if len(starts) < MIN_STARTS:
        return Advice("start_timeout", now.start_timeout, None, f"{len(starts)} start(s) seen, {MIN_STARTS} needed")
    slowest = max(s.seconds for s in starts)
    rec = max(60.0, _up(slowest * 2, 30))
    return Advice("start_timeout", now.start_timeout, _within(now.start_timeout, slowest * 1.5, rec * 4, rec),
                  f"the slowest of {len(starts)} starts (log replay included) took {slowest:.1f}s; "
                  "a start needs room for twice that")


def _recoveries(episodes: List[Episode]) -> List[Episode]:
    return [e for e in episodes if e.kind == "recovery" and e.ended is not None
            and any(p.event == "restart" for p in e.phases)]


def _grace(episodes: List[Episode], now: Current) -> Advice:
    rec_eps = _recoveries(episodes)
    if len(rec_eps) < MIN_RECOVERIES:
        return Advice("grace_period", now.grace_period, None,
                      f"{len(rec_eps)} local recoveries seen, {MIN_RECOVERIES} needed")
    longest = max((e.ended or e.started) - e.started for e in rec_eps)
    rec = max(2 * now.poll_interval, _up(longest * 1.5))
    return Advice("grace_period", now.grace_period, _within(now.grace_period, longest * 1.2, rec * 3, rec),
                  f"the longest of {len(rec_eps)} local recoveries took {longest:.1f}s from the first bad "
                  "observation; a grace shorter than that reports instances that would have recovered, a much "
                  "longer one adds to every failover's outage")


def _stop_timeout(ended_details: List[str], now: Current) -> Advice:
    took = [float(m.group(1)) for d in ended_details for m in [_SECONDS.search(d)] if m]
    if len(took) < MIN_STOPS:
        return Advice("stop_timeout", now.stop_timeout, None, f"{len(took)} timed end(s) seen, {MIN_STOPS} needed")
    slowest = max(took)
    rec = max(30.0, _up(slowest * 2))
    return Advice("stop_timeout", now.stop_timeout, _within(now.stop_timeout, slowest * 1.5, rec * 4, rec),
                  f"the slowest of {len(took)} clean ends took {slowest:.1f}s; endmqm -w needs room for twice that "
                  "before mqguard escalates to -i")


def _failover_since(episodes: List[Episode], event: str) -> List[float]:
    """In finished failovers: from the new active host's first ``event`` to its queue manager running."""
    out = []
    for e in episodes:
        if e.kind != "failover" or e.ended is None:
            continue
        closer = e.phases[-1]
        first = next((p.time for p in e.phases if p.event == event and p.host == closer.host), None)
        if first is not None:
            out.append(closer.time - first)
    return out


def _lock_wait(episodes: List[Episode], starts: List[Start], now: Current) -> Advice:
    waits = _failover_since(episodes, "start_issued")  # strmqm to running: the old host's lock included
    if len(waits) < MIN_FAILOVERS:
        return Advice("lock_wait", now.lock_wait, None, f"{len(waits)} failover(s) seen, {MIN_FAILOVERS} needed")
    longest = max(waits)
    rec = max(60.0, _up(longest * 1.5, 30))
    return Advice("lock_wait", now.lock_wait, _within(now.lock_wait, longest * 1.2, rec * 4, rec),
                  f"a replacement took up to {longest:.1f}s from strmqm to running (the old host's NFS lock must "
                  "expire first); lock_wait must outlast that or the replacement counts as bad")


def _restarts(episodes: List[Episode], now: Current) -> Advice:
    troubled = [e for e in episodes if e.kind in ("recovery", "failover", "drill") and e.ended is not None]
    if len(troubled) < MIN_RECOVERIES:
        return Advice("restart_attempts", now.restart_attempts, None,
                      f"{len(troubled)} finished episode(s) seen, {MIN_RECOVERIES} needed")
    helped = [sum(p.event == "restart" for p in e.phases) for e in troubled if e.kind != "failover"
              and any(p.event == "restart" for p in e.phases)]
    in_vain = [e for e in troubled if e.kind == "failover" and any(p.event == "restart" for p in e.phases)]
    if helped:
        needed = max(helped)
        rec = float(max(needed + 1, 2))
        return Advice("restart_attempts", now.restart_attempts, _within(now.restart_attempts, needed, rec + 2, rec),
                      f"{len(helped)} local recoveries needed up to {needed} restart(s); "
                      f"{len(in_vain)} failover(s) followed restarts that did not help")
    return Advice("restart_attempts", now.restart_attempts, 1.0 if in_vain else float(now.restart_attempts),
                  f"no local restart ever brought the queue manager back ({len(in_vain)} failovers followed "
                  "restarts); one attempt keeps the outage short")


def _asg_grace(episodes: List[Episode], now: Current) -> Advice:
    boots = _failover_since(episodes, "started")  # mqguard's start to MQ running
    if not boots:
        return Advice("asg HealthCheckGracePeriod", now.asg_grace, None,
                      "no failover to a replacement seen: nothing to size it by")
    longest = max(boots)
    return Advice("asg HealthCheckGracePeriod", now.asg_grace, 0.0 if now.hook_timeout else _up(longest * 1.5, 30),
                  f"a replacement took up to {longest:.1f}s from mqguard's start to MQ running; with the launch "
                  "hook InService already means MQ runs (0), without it the grace must cover that")


def _terminations(episodes: List[Episode]) -> List[float]:
    """Seconds from each host's termination (or spot) notice to its mqguard stopping: one pass over the phases
    (a quadratic pairing cost 1.25 GiB on 8,000 planted pairs)."""
    out: List[float] = []
    for e in episodes:
        notice: Dict[str, float] = {}
        for p in e.phases:  # in time order
            if p.event in ("termination_notice", "spot_notice"):
                notice.setdefault(p.host, p.time)
            elif p.event == "stopped" and p.host in notice:
                out.append(p.time - notice.pop(p.host))
    return out


def _hook_timeout(episodes: List[Episode], now: Current) -> Advice:
    boots = _failover_since(episodes, "started")  # mqguard's start to MQ running
    ends = _terminations(episodes)[-50:]
    if not boots and not ends:
        return Advice("lifecycle hook timeout", now.hook_timeout, None,
                      "no replacement start or termination seen: nothing to size it by")
    longest = max(boots + ends)
    rec = max(60.0, _up(longest * 1.5, 30))
    return Advice("lifecycle hook timeout", now.hook_timeout,
                  _within(now.hook_timeout or 0.0, longest * 1.2, rec * 6, rec),
                  f"the longest launch (mqguard start to MQ running) took {max(boots, default=0):.1f}s and the "
                  f"longest termination (notice to mqguard stopped) {max(ends, default=0):.1f}s; "
                  "a hook that times out first abandons (launch) or cuts short (termination)")
