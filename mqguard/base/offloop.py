"""Work that may hang on a shared file system, run off the caller's thread, one at a time.

A hung EFS blocks whatever touches it until the server answers. ``OneAtATime`` runs such
work on a background thread and never starts a second one while the first is stuck, so a
hang costs one thread however often it is asked; the caller either waits up to a deadline
(``run``) or only starts it and reads the result later (``start``).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")


class OneAtATime(Generic[T]):
    def __init__(self, name: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._started = 0.0

    @property
    def stuck_for(self) -> Optional[float]:
        """How long the run in progress has taken so far, or None when none is."""
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            return self.monotonic() - self._started if busy else None

    def start(self, fn: Callable[[], object]) -> Optional[threading.Event]:
        """Start ``fn`` unless a run is still in progress (then None); the event is set when it ends."""
        done = threading.Event()

        def body() -> None:
            try:
                fn()
            finally:
                done.set()

        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return None
            self._started = self.monotonic()
            self._thread = threading.Thread(target=body, name=self.name, daemon=True)
            self._thread.start()
        return done

    def run(self, fn: Callable[[], T], timeout: float) -> Tuple[Optional[T], str]:
        """(value, "") when ``fn`` finished within ``timeout``; (None, why) when it raised, did not finish,
        or a previous run is still stuck."""
        values: List[T] = []
        errors: List[str] = []

        def body() -> None:
            try:
                values.append(fn())
            except Exception as exc:  # reported to the caller as text, not raised on the background thread
                errors.append(str(exc) or type(exc).__name__)

        done = self.start(body)
        if done is None:
            return None, f"a previous {self.name} is still stuck after {self.stuck_for or 0:.0f}s"
        if not done.wait(timeout):
            return None, f"did not finish within {timeout:g}s"
        if errors:
            return None, errors[0]
        return values[0], ""
