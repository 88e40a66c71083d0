"""Is this instance going away? Watches instance metadata (IMDSv2).

Polls ``autoscaling/target-lifecycle-state`` (``Terminated`` once the Auto
Scaling group has decided to terminate this instance) and
``spot/instance-action`` (present once a spot interruption is announced, about
two minutes ahead). IMDS errors never mean "going away": an unreachable IMDS
is logged and the instance is assumed to stay.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Callable, Optional, Tuple

from mqguard.aws.imds import Imds, ImdsError, ImdsNotFound
from mqguard.base.untrusted import load_json, quoted
from mqguard.config import HealthConfig

log = logging.getLogger(__name__)

LIFECYCLE_PATH = "meta-data/autoscaling/target-lifecycle-state"
SPOT_PATH = "meta-data/spot/instance-action"


TERMINATING, SPOT = "terminating", "spot"


SPOT_ACTIONS = ("terminate", "stop", "hibernate")


def parse_spot_notice(body: Optional[str]) -> Optional[Tuple[str, str]]:
    """(action, time) from a real spot notice, e.g. {"action": "terminate", "time": "2026-11-27T08:22:00Z"}.

    None for no notice and for anything that is not one: a garbage answer must
    never make mqguard end the queue manager.
    """
    if not body:
        return None
    try:
        doc = load_json(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    action, when = doc.get("action"), doc.get("time")
    if action not in SPOT_ACTIONS or not isinstance(when, str) or not _SPOT_TIME.fullmatch(when):
        return None
    return action, when


_SPOT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def interpret(lifecycle_state: Optional[str], spot_action: Optional[str]) -> Optional[Tuple[str, str]]:
    """(kind, why) when the instance is going away, else None. Pure."""
    if lifecycle_state is not None and lifecycle_state.strip() == "Terminated":
        return TERMINATING, "the Auto Scaling group is terminating this instance (target-lifecycle-state Terminated)"
    notice = parse_spot_notice(spot_action)
    if notice is not None:
        return SPOT, f"a spot interruption is announced ({notice[0]} at {notice[1]})"
    return None


def is_warm(lifecycle_state: Optional[str]) -> bool:
    """``Warmed:Pending``, ``Warmed:Running``, ``Warmed:Stopped``, …: being prepared for a warm pool."""
    return lifecycle_state is not None and lifecycle_state.strip().startswith("Warmed:")


class TerminationWatch:
    """Polls IMDS on its own thread; ``reason`` becomes set once, never unset."""

    def __init__(self, imds: Imds, interval: float, stop: threading.Event, on_change: Callable[[], None]) -> None:
        self.imds = imds
        self.interval = interval
        self.stop = stop
        self.on_change = on_change
        self.reason: Optional[str] = None
        self.kind: Optional[str] = None  # TERMINATING or SPOT once going away
        self.warm = False  # target-lifecycle-state Warmed:* (a warm-pool instance: never start MQ)
        self._warned = False
        self._looked = False  # IMDS was asked at least once
        self._bad_notice = ""
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def interval_for(poll_interval: float) -> float:
        """IMDS is asked at least every 5 s (a spot notice gives two minutes), more often with a faster poll."""
        return min(5.0, poll_interval)

    def reconfigure(self, health: HealthConfig) -> None:
        """A reload's [health] (SIGHUP): the next wait uses its poll_interval."""
        self.interval = self.interval_for(health.poll_interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="imds-termination", daemon=True)
        self._thread.start()

    def check(self, within: Optional[float] = None) -> Optional[str]:
        """One look at IMDS (each path bounded by ``within`` when given); returns (and remembers) the reason."""
        if self.reason is not None:
            return self.reason
        self._looked = True
        try:
            state = self._get(LIFECYCLE_PATH, within)
            spot = self._get(SPOT_PATH, within)
        except ImdsError as exc:
            if not self._warned:
                log.info("cannot read instance metadata (%s); assuming the instance stays", exc)
                self._warned = True
            return None
        warm = is_warm(state)
        if warm != self.warm:
            self.warm = warm
            log.warning("Auto Scaling lifecycle state %s: %s", quoted(state or ""),
                        "warm pool, the queue manager is not started" if warm else "in service")
            self.on_change()
        found = interpret(state, spot)
        if found is None and spot and spot != self._bad_notice:  # an answer, but no notice in it
            self._bad_notice = spot
            log.warning("ignoring an unparsable spot/instance-action answer %s: treated as no notice", quoted(spot))
        if found is not None:
            self.kind, self.reason = found
            log.warning("instance is going away: %s", self.reason)
            self.on_change()
        return self.reason

    def _get(self, path: str, within: Optional[float] = None) -> Optional[str]:
        try:
            return self.imds.get(path, within)
        except ImdsNotFound:
            return None

    def _loop(self) -> None:
        if self._looked:
            self.stop.wait(self.interval)  # the daemon's start-up look was this round's
        while not self.stop.is_set() and self.check() is None:
            self.stop.wait(self.interval)
