"""Auto Scaling lifecycle hooks: complete them, and keep them alive meanwhile.

- launch_hook (EC2_INSTANCE_LAUNCHING): completed CONTINUE once the queue
  manager is healthy for the first time, so the group only counts this instance
  as in service when MQ really runs.
- termination_hook (EC2_INSTANCE_TERMINATING): completed CONTINUE after the
  queue manager has been ended cleanly; while ending takes long, heartbeats
  keep the hook from timing out.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Optional, Type

from mqguard.aws.autoscaling import AutoScaling, call_until_done
from mqguard.aws.errors import AwsErrors
from mqguard.base.retry import Backoff

log = logging.getLogger(__name__)


def heartbeat_interval(stop_timeout: float) -> float:
    """Well inside a hook's HeartbeatTimeout (30 s at least): a few per stop_timeout."""
    return max(1.0, min(30.0, stop_timeout / 4))


class Hooks:
    def __init__(self, asg: AutoScaling, asg_name: str, launch_hook: str, termination_hook: str,
                 stop: threading.Event, backoff: Optional[Backoff] = None,
                 errors: Optional[AwsErrors] = None) -> None:
        self.asg = asg
        self.asg_name = asg_name
        self.launch_hook = launch_hook
        self.termination_hook = termination_hook
        self.stop = stop
        self.backoff = backoff or Backoff(base=1.0, cap=30.0)
        self.errors = errors
        self.launch_completed = False
        self.termination_completed = False

    def complete_launch(self, warm: bool = False) -> None:
        """In the background: the queue manager is up (or, ``warm``, the instance may join its warm pool:
        the group then expects the hook once more when it moves the instance into service)."""
        if self.launch_hook and (warm or not self.launch_completed):
            threading.Thread(target=self._complete_launch, args=(warm,), name="launch-hook", daemon=True).start()

    def _complete_launch(self, warm: bool) -> None:
        if self._complete(self.launch_hook, "CONTINUE", attempts=None) and not warm:
            self.launch_completed = True

    def complete_termination(self, attempts: int = 5) -> None:
        """After the clean end (called on the worker thread; bounded)."""
        if self.termination_hook and self._complete(self.termination_hook, "CONTINUE", attempts):
            self.termination_completed = True

    def _complete(self, hook: str, result: str, attempts: Optional[int]) -> bool:
        def call() -> bool:
            self.asg.complete_lifecycle_action(hook, self.asg.group_name(self.asg_name), result)
            return True

        try:
            done = call_until_done(f"CompleteLifecycleAction({hook}, {result})", "CompleteLifecycleAction", call,
                                   self.stop, self.backoff, max_attempts=attempts, errors=self.errors)
        except Exception as exc:
            log.error("could not complete lifecycle hook %s: %s; the group will apply the hook's default "
                      "result when it times out", hook, exc)
            return False
        if done:
            log.info("completed lifecycle hook %s with %s", hook, result)
        return bool(done)

    def heartbeats(self, interval: float) -> Heartbeats:
        return Heartbeats(self, interval)


class Heartbeats:
    """While in the ``with`` block, record a heartbeat on the termination hook every ``interval``."""

    def __init__(self, hooks: Hooks, interval: float) -> None:
        self.hooks = hooks
        self.interval = interval
        self.sent = 0
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> Heartbeats:
        if self.hooks.termination_hook:
            self._thread = threading.Thread(target=self._run, name="hook-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        hooks = self.hooks
        while not self._done.wait(self.interval):
            try:
                hooks.asg.record_heartbeat(hooks.termination_hook, hooks.asg.group_name(hooks.asg_name))
                self.sent += 1
            except Exception as exc:  # a missed heartbeat only shortens the hook's remaining time
                log.warning("lifecycle hook heartbeat for %s failed: %s", hooks.termination_hook, exc)

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)
