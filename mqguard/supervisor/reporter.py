"""Carries out REPORT_UNHEALTHY: SetInstanceHealth on a thread, retried until done.

A report is sent only while the bad episode that asked for it is still bad:
each attempt first asks ``still_bad``, so a queue manager that recovered while
the API was unreachable does not get its instance replaced afterwards. A newer
episode's report takes over a sending thread that is still retrying.

With ``report = log`` it only logs (a dry run) and makes no AWS call at all.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from mqguard.aws.autoscaling import AutoScaling, call_until_done
from mqguard.aws.errors import PERMANENT_FLOOR, AwsErrors
from mqguard.base.retry import Backoff
from mqguard.config import HealthConfig, ReportMode

log = logging.getLogger(__name__)

REPORT_FLUSH = 5.0  # at most this long for the 'reported' history event to reach the storage


class Reporter:
    def __init__(
        self,
        mode: ReportMode,
        autoscaling: Optional[AutoScaling],
        respect_grace_period: bool,
        stop: threading.Event,
        backoff: Optional[Backoff] = None,
        on_reported: Callable[[], None] = lambda: None,
        errors: Optional[AwsErrors] = None,
        record: Callable[[str, str], None] = lambda event, detail: None,
        flush: Callable[[float], bool] = lambda timeout: True,
    ) -> None:
        self.mode = mode
        self.autoscaling = autoscaling
        self.respect_grace_period = respect_grace_period
        self.stop = stop
        self.backoff = backoff
        self.on_reported = on_reported
        self.record = record  # the failover history: the report's own event is written here, then flushed
        self.flush = flush
        self.dry_runs = 0
        self.preflight_result = ""  # "", "ok", "not in an Auto Scaling group" or "error: ..."
        self.errors = errors if errors is not None else AwsErrors()
        self.floor = PERMANENT_FLOOR
        self._lock = threading.Lock()
        self._reported = False
        self._still_bad: Callable[[], bool] = lambda: True
        self._thread: Optional[threading.Thread] = None

    def reconfigure(self, health: HealthConfig) -> None:
        """A reload's [health] (SIGHUP): report mode and whether to respect the group's grace period."""
        self.mode = health.report
        self.respect_grace_period = health.respect_asg_grace_period

    @property
    def reported(self) -> bool:
        """SetInstanceHealth(Unhealthy) succeeded at least once."""
        with self._lock:
            return self._reported

    def report(self, reason: str, still_bad: Callable[[], bool] = lambda: True) -> None:
        if self.mode == ReportMode.LOG:
            with self._lock:
                self.dry_runs += 1
            log.error("instance is unhealthy (%s); report = log, so Auto Scaling is NOT told (dry run)", reason)
            return
        with self._lock:
            self._still_bad = still_bad  # the newest episode's question, also for a thread still retrying
            if self._thread is not None and self._thread.is_alive():
                log.info("an Unhealthy report is already being retried; it now serves this episode")
                return
            log.error("instance is unhealthy (%s); reporting it to Auto Scaling", reason)
            self._thread = threading.Thread(target=self._send, name="report-unhealthy", daemon=True)
            self._thread.start()

    def _current_still_bad(self) -> bool:
        with self._lock:
            check = self._still_bad
        return check()

    def _send(self) -> None:
        asg = self.autoscaling
        if asg is None:  # report = autoscaling always comes with a client
            log.error("no Auto Scaling client; cannot report")
            return
        abandoned = threading.Event()

        def attempt() -> Optional[str]:
            if not self._current_still_bad():
                abandoned.set()
                return None
            return asg.set_unhealthy(self.respect_grace_period)

        instance = call_until_done("SetInstanceHealth(Unhealthy)", "SetInstanceHealth", attempt, self.stop,
                                   self.backoff, errors=self.errors, floor=self.floor)
        if abandoned.is_set():
            log.warning("not reporting the instance after all: the bad episode that asked for it has ended")
            return
        if instance is not None:
            # The group replaces this instance next: its last words go to the shared storage before anything
            # else happens (bounded: a hung EFS must not hold the report's news back for long).
            self.record("reported", "SetInstanceHealth(Unhealthy) accepted by Auto Scaling")
            if not self.flush(REPORT_FLUSH):
                log.warning("the 'reported' history event was not written within %.0fs (EFS slow?)", REPORT_FLUSH)
            with self._lock:
                self._reported = True
            log.error(
                "reported instance %s Unhealthy to Auto Scaling (ShouldRespectGracePeriod=%s); "
                "the group will replace it; mqguard keeps serving until then",
                instance, self.respect_grace_period,
            )
            self.on_reported()

    def preflight(self) -> None:
        """At start-up, check in the background that a report could be made.

        An instance role without permission, or an instance outside any group,
        is then found in the log at boot, not during an outage. Never blocks
        and never fails supervision.
        """
        if self.mode != ReportMode.AUTOSCALING or self.autoscaling is None:
            return
        threading.Thread(target=self._preflight, name="report-preflight", daemon=True).start()

    def _preflight(self) -> None:
        asg = self.autoscaling
        if asg is None:
            return
        try:
            found = call_until_done("Auto Scaling preflight (DescribeAutoScalingInstances)",
                                    "DescribeAutoScalingInstances", asg.describe_instance, self.stop,
                                    self.backoff or Backoff(base=2.0, cap=10.0), max_attempts=3, errors=self.errors)
        except Exception as exc:
            self.preflight_result = f"error: {exc}"
            log.warning("cannot confirm that this instance can be reported to Auto Scaling (%s); "
                        "check the instance role (examples/iam-policy.json) and IMDS; reporting retries when needed",
                        exc)
            return
        ident = asg.identity()
        if not found:
            self.preflight_result = "not in an Auto Scaling group"
            log.warning("instance %s is not in an Auto Scaling group: an Unhealthy report would have no effect",
                        ident.instance_id)
            return
        self.preflight_result = "ok"
        log.info("Auto Scaling reachable: instance %s in group %s (%s, %s)", ident.instance_id,
                 found.get("AutoScalingGroupName"), found.get("LifecycleState"), found.get("HealthStatus"))

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
