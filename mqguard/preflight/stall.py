"""A storage that stops answering: when the check last got an answer, and a watch that says so after a limit
(an NFS hard mount retries for ever; the blocked call itself cannot be interrupted)."""

from __future__ import annotations

import threading
import time
from typing import Callable


class Liveness:
    """When the check last got an answer from the storage, and in which phase: what the stall watch reads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.phase = "opening the check's directory"
        self.answered = clock()
        self.done = threading.Event()

    def answer(self, phase: str) -> None:
        self.phase, self.answered = phase, self.clock()

    def finish(self) -> None:
        self.done.set()


def watch_for_stall(live: Liveness, limit: float, on_stall: Callable[[str, float], None]) -> threading.Thread:
    """A thread that calls ``on_stall(phase, seconds blocked)`` once if no operation returns for ``limit``
    seconds before ``live.finish()``. The blocked call itself cannot be interrupted (it waits in the kernel)."""

    def watch() -> None:
        while not live.done.wait(min(0.5, limit / 4)):
            blocked = live.clock() - live.answered
            if blocked >= limit:
                on_stall(live.phase, blocked)
                return

    t = threading.Thread(target=watch, name="storage-stall-watch", daemon=True)
    t.start()
    return t
