"""The last finished episode of each kind, for the metrics.

Read on a thread of its own, never on the history writer's (this host's own events must never wait behind a
read of every host's files) and never on the loop; bounded in total (``DAEMON_BUDGET``: the daemon keeps only
what the metrics need), this host's file first, at most once per ``MIN_INTERVAL`` however often episodes
close. A read is asked for after a write that may have closed an episode; the start-up never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, FrozenSet, List, Optional

from mqguard.history.episodes import episodes
from mqguard.history.events import Event
from mqguard.history.reader import DAEMON_BUDGET, Budget, read_history

log = logging.getLogger(__name__)

CLOSERS = {"running", "takeover", "good", "standby"}
LOOK_BACK = 30 * 86400.0  # a month of history is plenty for "the last one"
MIN_INTERVAL = 10.0  # between two reads, however often episodes close (a flapping queue manager)


class EpisodeSummary:
    def __init__(self, storage_path: str, owners: FrozenSet[int], wall: Callable[[], float],
                 seen: Callable[[str, float, float], None], host: Callable[[], str] = lambda: "",
                 budget: Budget = DAEMON_BUDGET, min_interval: float = MIN_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.wall = wall
        self.seen = seen
        self.host = host  # this host's history file name, read first
        self.budget = budget
        self.min_interval = min_interval
        self.sleep = sleep
        self.reads = 0
        self._first = True
        self._wanted = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._said = ""

    def after_write(self, batch: List[Event]) -> None:
        """On the writer's thread: only decides and signals, never reads."""
        if not self._first and not any(e.event in CLOSERS for e in batch):
            return
        self._first = False
        self._wanted.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="history-summary", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self.read_once()
            except Exception as exc:  # EFS trouble, a refused directory: the metrics keep their last values
                log.debug("history: summary read failed: %s", exc)
            self.sleep(self.min_interval)

    def read_once(self) -> None:
        now = self.wall()
        hist = read_history(self.storage_path, self.owners, now, since=now - LOOK_BACK, budget=self.budget,
                            first=self.host())
        self.reads += 1
        said = "; ".join(hist.truncated + hist.problems)
        if said and said != self._said:
            log.warning("history: read %d events for the metrics, truncated: %s", len(hist.events), said)
        self._said = said
        for ep in episodes(hist.events):
            if ep.ended is not None:
                self.seen(ep.kind, ep.outage_seconds or 0.0, ep.ended)
