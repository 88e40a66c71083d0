"""The last finished episode of each kind, for the metrics (runs on the history writer's
thread after a write that may have closed one, never on the loop)."""

from __future__ import annotations

from typing import Callable, FrozenSet, List

from mqguard.history.episodes import episodes
from mqguard.history.events import Event
from mqguard.history.reader import read_history

CLOSERS = {"running", "takeover", "good", "standby"}
LOOK_BACK = 30 * 86400.0  # a month of history is plenty for "the last one"


class EpisodeSummary:
    def __init__(self, storage_path: str, owners: FrozenSet[int], wall: Callable[[], float],
                 seen: Callable[[str, float, float], None]) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.wall = wall
        self.seen = seen
        self._first = True

    def after_write(self, batch: List[Event]) -> None:
        if not self._first and not any(e.event in CLOSERS for e in batch):
            return
        self._first = False
        now = self.wall()
        hist = read_history(self.storage_path, self.owners, now, since=now - LOOK_BACK)
        for ep in episodes(hist.events):
            if ep.ended is not None:
                self.seen(ep.kind, ep.outage_seconds or 0.0, ep.ended)
