"""Retry with capped exponential backoff and full jitter, on an injected clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 30.0
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): full jitter in [base/2, ceiling]."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return float(max(self.base / 2, ceiling * self.rng()))


def wait_or_stop(stop: Optional[Callable[[float], bool]], sleep: Callable[[float], None], seconds: float) -> bool:
    """Sleep ``seconds`` unless asked to stop; True when stopping.

    ``stop`` is usually ``threading.Event.wait``: it returns True when set.
    """
    if stop is not None:
        return stop(seconds)
    sleep(seconds)
    return False
