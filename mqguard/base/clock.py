"""The one clock: monotonic time for decisions, wall time for humans.

Decision code takes a ``Clock`` so tests can drive a 60 s grace period without
sleeping for 60 s.
"""

from __future__ import annotations

import datetime
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


def iso_utc(wall: float | None) -> str | None:
    """ISO 8601 UTC with a Z suffix, or None."""
    if wall is None:
        return None
    try:
        dt = datetime.datetime.fromtimestamp(wall, tz=datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):  # a value from outside that no date can show: never raise
        return "invalid time"
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
