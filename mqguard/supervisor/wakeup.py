"""The loop's one way to be woken: a self-pipe that threads, jobs and signals write to."""

from __future__ import annotations

import os
import signal
from typing import Optional

from mqguard.mq.pidwatch import ControllerWatch, wait_for_wake


class WakePipe:
    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        try:
            os.write(self._w, b"\0")
        except BlockingIOError:
            pass  # pipe full: a wake-up is already pending

    def wait(self, watch: Optional[ControllerWatch], timeout: float) -> Optional[int]:
        """Sleep until woken, the watched controller exits (its PID is returned), or ``timeout``."""
        return wait_for_wake(self._r, watch, timeout)

    def wake_on_signals(self) -> None:
        """A signal arriving while the loop sleeps wakes it (the handlers only set flags)."""
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
