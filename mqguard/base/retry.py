"""Retry with capped exponential backoff and full jitter, on an injected clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 30.0
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): full jitter in [base/2, ceiling]."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return float(max(self.base / 2, ceiling * self.rng()))
