"""The restart budget: local restarts allowed in any restart_window (docs/reference.md, restart_limit). Pure."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Optional


@dataclass
class RestartBudget:
    times: Deque[float] = field(default_factory=deque)  # when each local restart began

    def remaining(self, now: float, limit: int, window: float) -> int:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        return max(0, limit - len(self.times))

    def record(self, now: float) -> None:
        self.times.append(now)

    def forget_last(self) -> None:
        """The last restart never began (mqguard could not start its job): it costs nothing."""
        if self.times:
            self.times.pop()

    def clear(self) -> None:
        self.times.clear()

    def frees_at(self, limit: int, window: float) -> Optional[float]:
        """When a spent budget allows a restart again (None while it is not spent)."""
        return self.times[0] + window if self.times and len(self.times) >= limit else None
