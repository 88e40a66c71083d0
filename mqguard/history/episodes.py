"""Grouping every host's events into episodes with phases and outages (pure).

An episode opens at the first sign of trouble (``crash``, ``bad``, a ``drill``, a
``switchover``, or an end or a termination/spot notice on the active host) and closes
when a host is active again (``running``, ``takeover``) or the active host is good
again (its listener answers again); trouble on a standby while another host stays
active closes when that standby is good again. The outage is the time with no active
instance serving: from the first moment the active host was lost or bad (or the
episode's start when none was active) to the close. A host that dies without a
word leaves no opener: its replacement's start then shows in the per-host starts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from mqguard.history.events import Event, iso

OPENERS = {"crash", "bad", "drill", "switchover", "active_lost"}
ON_ACTIVE = {"ended", "termination_notice", "spot_notice"}  # open an episode only on the active host
LOSSES = {"crash", "ended", "stopped"}  # the host no longer runs the queue manager
ACTIVE = {"running", "takeover", "elected"}  # elected: another host's Native HA instance (not this host's role)
QUIET = {"paused", "resumed"}  # not phases


@dataclass
class Episode:
    kind: str
    started: float
    host: str  # where it opened
    phases: List[Event] = field(default_factory=list)
    ended: Optional[float] = None
    outage_from: Optional[float] = None
    outage_to: Optional[float] = None
    standby_only: bool = False  # opened on a standby while another host stayed active

    @property
    def outage_seconds(self) -> Optional[float]:
        if self.outage_from is None:
            return 0.0 if self.ended is not None else None
        return None if self.outage_to is None else max(0.0, self.outage_to - self.outage_from)

    def phase_seconds(self) -> List[float]:
        times = [p.time for p in self.phases]
        return [max(0.0, b - a) for a, b in zip(times, times[1:])] + [0.0]

    def to_json(self) -> Dict[str, Any]:
        return {
            "kind": self.kind, "started": iso(self.started), "ended": iso(self.ended) if self.ended else None,
            "outage_seconds": None if self.outage_seconds is None else round(self.outage_seconds, 3),
            "phases": [{"event": p.event, "time": iso(p.time), "host": p.host, "detail": p.detail,
                        "seconds": round(s, 3)} for p, s in zip(self.phases, self.phase_seconds())],
        }


@dataclass(frozen=True)
class Start:
    host: str
    time: float
    seconds: float  # start_issued -> running / standby / takeover (log replay included)
    became: str


def episodes(events: List[Event]) -> List[Episode]:
    found: List[Episode] = []
    roles: Dict[str, str] = {}  # host -> active, standby or down, as its own events said
    current: Optional[Episode] = None
    for ev in events:
        if ev.event in QUIET:
            continue
        active = {h for h, r in roles.items() if r == "active"}
        if current is None and _opens(ev, active):
            current = _open(ev, active)
            found.append(current)
        if current is not None:
            _add_phase(current, ev, active)
        _track(roles, ev)
        if current is not None and _closes(current, ev, roles):
            _close(current, ev)
            current = None
    return found


def _open(ev: Event, active: Set[str]) -> Episode:
    ep = Episode(_kind(ev), ev.time, ev.host, standby_only=bool(active) and ev.host not in active)
    if not active:
        ep.outage_from = ev.time  # nothing was active: the outage is the whole episode
    return ep


def _add_phase(ep: Episode, ev: Event, active: Set[str]) -> None:
    ep.phases.append(ev)
    if ep.outage_from is None and ev.host in active and ev.event in LOSSES | {"bad", "standby"}:
        ep.outage_from = ev.time  # the active host is lost (or serves no one): clients wait


def _close(ep: Episode, ev: Event) -> None:
    ep.ended = ev.time
    if ep.outage_from is not None:
        ep.outage_to = ev.time
    if ep.kind == "recovery" and (ev.event == "elected" or (ev.host != ep.host and ev.event in ACTIVE)):
        ep.kind = "failover"


def _opens(ev: Event, active: Set[str]) -> bool:
    return ev.event in OPENERS or (ev.event in ON_ACTIVE and ev.host in active)


def _kind(ev: Event) -> str:
    # a Native HA instance lost as seen from another host: whoever is elected next, the active moved
    return {"drill": "drill", "switchover": "switchover", "active_lost": "failover"}.get(ev.event, "recovery")


def _track(roles: Dict[str, str], ev: Event) -> None:
    if ev.event == "elected":
        roles.pop(ev.host, None)  # another host's instance is active: this host is not (its own events say)
    elif ev.event in ACTIVE:
        roles[ev.host] = "active"
    elif ev.event == "standby":
        roles[ev.host] = "standby"
    elif ev.event in LOSSES:
        roles[ev.host] = "down"


def _closes(ep: Episode, ev: Event, roles: Dict[str, str]) -> bool:
    if ev is ep.phases[0] and ev.event not in ACTIVE:
        return False
    if ev.event in ACTIVE:
        return True
    if ep.standby_only:
        return ev.host == ep.host and ev.event in ("good", "standby")
    return ev.event == "good" and roles.get(ev.host) == "active"  # e.g. the listener answers again


def starts(events: List[Event]) -> List[Start]:
    """Each start this history saw, per host: how long from strmqm to running (or standby)."""
    issued: Dict[str, float] = {}
    out: List[Start] = []
    for ev in events:
        if ev.event == "start_issued":
            issued[ev.host] = ev.time
        elif ev.event in ("running", "standby", "takeover") and ev.host in issued:
            out.append(Start(ev.host, issued[ev.host], ev.time - issued.pop(ev.host), ev.event))
        elif ev.event in ("stopped", "crash", "bad"):
            issued.pop(ev.host, None)  # a start that did not finish is not a start duration
    return out
