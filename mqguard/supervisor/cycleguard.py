"""The loop's own small parts: what it does with an exception from a cycle (log, count, go on: a cycle's
failure never ends supervision, mqguard_cycle_errors_total counts it), and when the next cycle is due.

A bug or an unexpected answer in one observation or effect must not end supervision
(patroni's run_cycle does the same). The traceback is logged at most once a minute, so
a failure that repeats every cycle cannot flood the journal; each one is still counted
(``mqguard_cycle_errors_total``) and named in one ERROR line. The cycle that failed
did not complete, so it sends no watchdog ping: a loop that fails every time is
restarted by systemd after WatchdogSec, which is the right escalation.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

log = logging.getLogger("mqguard.supervisor.daemon")

TRACEBACK_EVERY = 60.0  # seconds between two tracebacks


class CycleGuard:
    def __init__(self, count: Callable[[], None], monotonic: Callable[[], float]) -> None:
        self.count = count
        self.monotonic = monotonic
        self._last_traceback = float("-inf")

    def failed(self, exc: BaseException) -> None:
        """Called from an ``except`` block of the loop."""
        self.count()
        now = self.monotonic()
        if now - self._last_traceback >= TRACEBACK_EVERY:
            self._last_traceback = now
            log.exception("supervision cycle failed: %s: %s; going on with the next cycle", type(exc).__name__, exc)
        else:
            log.error("supervision cycle failed: %s: %s; going on (traceback logged at most once a minute)",
                      type(exc).__name__, exc)


def next_due(started: float, poll_interval: float, watchdog_interval: Optional[float],
             deadline: Optional[float]) -> float:
    """When the next cycle is due (monotonic). Pure."""
    due = started + poll_interval
    if watchdog_interval is not None:  # cycle at least twice per WatchdogSec, whatever poll_interval says
        due = min(due, started + watchdog_interval)
    if deadline is not None:  # wake when a grace period, a budget or a pause runs out, not a poll later
        due = min(due, deadline + 0.01)
    return due

