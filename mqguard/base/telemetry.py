"""Counters and latency samples that mqguard's parts record as they work.

Plain, thread-safe Python: the metrics module turns a copy of this into
Prometheus families at scrape time, so recording never depends on
prometheus_client and tests can read the numbers directly.

Why not prometheus_client's Histogram and Counter objects: they would live in
a registry next to the collector that serves the snapshot, each with its own
lock, so one scrape could not read all of them as of one moment (counters
and the histograms of a cycle would disagree); and mqguard's metrics must have
their label sets created up front from the contract's tables, which the
collector already does from this one copy. The histogram here is a dozen lines.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import DefaultDict, Dict, List, Sequence, Tuple

COMMAND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
PROBE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


@dataclass
class Histogram:
    buckets: Sequence[float]
    counts: List[int] = field(default_factory=list)  # per bucket, not cumulative; last is +Inf
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> List[Tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(list(self.buckets) + [float("inf")], self.counts):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.buckets, list(self.counts), self.total, self.count)


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.command_seconds: Dict[str, Histogram] = {}
        self.command_failures: DefaultDict[str, int] = defaultdict(int)
        self.aws_calls: DefaultDict[Tuple[str, str], int] = defaultdict(int)
        self.probe_seconds = Histogram(PROBE_BUCKETS)
        self.cycle_seconds = Histogram(CYCLE_BUCKETS)
        self.mqsc_failures = 0
        self.hook_runs: DefaultDict[str, int] = defaultdict(int)  # on_state_change runs by result
        self.mq_messages: DefaultDict[str, int] = defaultdict(int)  # MQ error-log messages by severity I/W/E/S
        self.fdc_files = 0
        self.http_connections: DefaultDict[str, int] = defaultdict(int)  # closed for room: evicted, refused
        self.cycle_errors = 0  # cycles that ended in an exception (the loop went on)
        self.history_written = 0  # events appended to this host's history file on EFS
        self.history_dropped = 0  # events lost: the queue was full (EFS hung) or the write failed
        self.history_write_errors = 0  # batches the history writer could not write
        self.last_episode: Dict[str, Tuple[float, float]] = {}  # kind -> (outage seconds, ended, Unix time)

    def http_connection(self, result: str) -> None:
        with self._lock:
            self.http_connections[result] += 1

    def mq_message(self, severity: str, n: int) -> None:
        with self._lock:
            self.mq_messages[severity] += n

    def fdc(self, n: int) -> None:
        with self._lock:
            self.fdc_files += n

    def hook_run(self, result: str) -> None:
        with self._lock:
            self.hook_runs[result] += 1

    def command(self, name: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self.command_seconds.setdefault(name, Histogram(COMMAND_BUCKETS)).observe(seconds)
            if not ok:
                self.command_failures[name] += 1

    def mqsc_failed(self, files: int) -> None:
        with self._lock:
            self.mqsc_failures += files

    def aws_call(self, operation: str, result: str) -> None:
        with self._lock:
            self.aws_calls[(operation, result)] += 1

    def probe(self, seconds: float) -> None:
        with self._lock:
            self.probe_seconds.observe(seconds)

    def cycle(self, seconds: float) -> None:
        with self._lock:
            self.cycle_seconds.observe(seconds)

    def cycle_error(self) -> None:
        with self._lock:
            self.cycle_errors += 1

    def history_write(self, written: int) -> None:
        with self._lock:
            self.history_written += written

    def history_drop(self, n: int) -> None:
        with self._lock:
            self.history_dropped += n

    def history_write_error(self) -> None:
        with self._lock:
            self.history_write_errors += 1

    def episode_seen(self, kind: str, outage: float, ended: float) -> None:
        with self._lock:
            self.last_episode[kind] = (outage, ended)

    def snapshot(self) -> Telemetry:
        """A consistent copy for a scrape."""
        with self._lock:
            copy = Telemetry()
            copy.command_seconds = {k: v.copy() for k, v in self.command_seconds.items()}
            copy.command_failures = defaultdict(int, self.command_failures)
            copy.aws_calls = defaultdict(int, self.aws_calls)
            copy.probe_seconds = self.probe_seconds.copy()
            copy.cycle_seconds = self.cycle_seconds.copy()
            copy.mqsc_failures = self.mqsc_failures
            copy.hook_runs = defaultdict(int, self.hook_runs)
            copy.mq_messages = defaultdict(int, self.mq_messages)
            copy.fdc_files = self.fdc_files
            copy.http_connections = defaultdict(int, self.http_connections)
            copy.cycle_errors = self.cycle_errors
            copy.history_written = self.history_written
            copy.history_dropped = self.history_dropped
            copy.history_write_errors = self.history_write_errors
            copy.last_episode = dict(self.last_episode)
            return copy
