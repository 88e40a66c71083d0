"""One background job at a time (prepare/start/MQSC), so the loop never blocks on it."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Tuple

from mqguard.supervisor.machine import JobOutcome, JobResult, JobStage

log = logging.getLogger(__name__)

StageSetter = Callable[[JobStage], None]
Job = Callable[[StageSetter], JobResult]


class Worker:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._stage: Optional[JobStage] = None
        self._result: Optional[JobResult] = None
        self._thread: Optional[threading.Thread] = None

    def submit(self, name: str, job: Job) -> bool:
        with self._lock:
            if self._stage is not None:
                return False
            self._stage = JobStage.PREPARING
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"job-{name}", daemon=True)
            self._thread.start()
            return True

    def _set_stage(self, stage: JobStage) -> None:
        with self._lock:
            self._stage = stage

    def _run(self, job: Job) -> None:
        try:
            result = job(self._set_stage)
        except Exception as exc:  # a bug or an unexpected OS error must not kill supervision
            log.exception("job failed unexpectedly")
            result = JobResult(JobOutcome.FAILED, f"unexpected error: {exc}")
        with self._lock:
            self._stage = None
            self._result = result
        self._wake()

    def take(self) -> Tuple[Optional[JobStage], Optional[JobResult]]:
        """The current stage and any finished result (consumed), read together."""
        with self._lock:
            result, self._result = self._result, None
            return self._stage, result

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._stage is not None

    def join(self, timeout: float) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
