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
        self.launch_abandoned = False
        self.termination_completed = False
        self._launch_beats: Optional[Heartbeats] = None

    def complete_launch(self, warm: bool = False) -> None:
        """In the background: the queue manager is up (or, ``warm``, the instance may join its warm pool:
        the group then expects the hook once more when it moves the instance into service)."""
        if self.launch_hook and not self.launch_abandoned and (warm or not self.launch_completed):
            threading.Thread(target=self._complete_launch, args=(warm,), name="launch-hook", daemon=True).start()

    def _complete_launch(self, warm: bool) -> None:
        self.stop_launch_heartbeats()  # an operator's hold is over (MQ runs): the launch completes now
        if self._complete(self.launch_hook, "CONTINUE", attempts=None) and not warm:
            self.launch_completed = True

    def launch_pending(self) -> bool:
        """The launch hook is configured and this instance has not completed it yet."""
        return bool(self.launch_hook) and not self.launch_completed and not self.launch_abandoned

    def abandon_launch(self, reason: str) -> None:
        """The instance cannot serve: ABANDON the launch now (the group terminates it and launches another at
        once) instead of letting the hook time out (its HeartbeatTimeout, up to 17 min in the kit)."""
        if not self.launch_pending():
            return
        self.launch_abandoned = True
        log.error("abandoning the launch of this instance (%s): the group replaces it now", reason)
        threading.Thread(target=self._complete, args=(self.launch_hook, "ABANDON", 5), name="launch-hook",
                         daemon=True).start()

    def keep_launch_alive(self, why: str) -> None:
        """The instance waits for an operator (held): heartbeat the launch hook so that the group does not
        terminate the instance being investigated (AWS bounds it: 100 x the timeout, at most 48 hours)."""
        if not self.launch_pending() or self._launch_beats is not None:
            return
        log.warning("keeping the launch hook %s alive while an operator acts (%s)", self.launch_hook, why)
        self._launch_beats = Heartbeats(self, heartbeat_interval(60.0), hook=self.launch_hook, at_once=True).__enter__()

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

    def stop_launch_heartbeats(self) -> None:
        beats, self._launch_beats = self._launch_beats, None
        if beats is not None:
            beats.__exit__(None, None, None)


class Heartbeats:
    """While in the ``with`` block, record a heartbeat on a hook (the termination hook unless told) every
    ``interval``."""

    def __init__(self, hooks: Hooks, interval: float, hook: str = "", at_once: bool = False) -> None:
        self.hooks = hooks
        self.hook = hook or hooks.termination_hook
        self.interval = interval
        self.at_once = at_once  # the first heartbeat now (the hook's timer starts again at once)
        self.sent = 0
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> Heartbeats:
        if self.hook:
            self._thread = threading.Thread(target=self._run, name="hook-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        hooks = self.hooks
        wait = 0.0 if self.at_once else self.interval
        while not self._done.wait(wait):
            wait = self.interval
            try:
                hooks.asg.record_heartbeat(self.hook, hooks.asg.group_name(hooks.asg_name))
                self.sent += 1
            except Exception as exc:  # a missed heartbeat only shortens the hook's remaining time
                log.warning("lifecycle hook heartbeat for %s failed: %s", self.hook, exc)

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)
