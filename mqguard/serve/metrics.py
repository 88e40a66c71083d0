"""Prometheus metrics, built at scrape time from the last snapshot.

A custom collector reads the daemon's ``Snapshot``, its ``Telemetry`` and the
last MQI/PCF view; nothing here runs a command or touches EFS. Each daemon
(and each test) builds its own registry: nothing is registered globally.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional, Tuple

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from mqguard import __version__
from mqguard.aws.autoscaling import OPERATIONS
from mqguard.mq.diagnostics import SEVERITIES
from mqguard.mq.status import ALL_STATUSES
from mqguard.serve.telemetry import COMMAND_BUCKETS, Histogram, Telemetry
from mqguard.supervisor.machine import State
from mqguard.supervisor.snapshot import Snapshot

KNOWN_COMMANDS = ("dspmq", "dspmqinf", "addmqinf", "crtmqm", "strmqm", "endmqm", "runmqsc")
AWS_RESULTS = ("ok", "error", "throttled")

Source = Callable[[], Tuple[Optional[Snapshot], Telemetry]]


def _histogram(name: str, doc: str, labels: Tuple[str, ...], values: Tuple[str, ...], h: Histogram,
               family: Optional[HistogramMetricFamily] = None) -> HistogramMetricFamily:
    fam = family or HistogramMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(values), h.cumulative(), h.total)
    return fam


class MqguardCollector(Collector):
    """All ``mqguard_*`` metrics of the contract, from one consistent snapshot."""

    def __init__(self, source: Source, qmgr: str, storage_path: str, listener_port: int,
                 wall: Callable[[], float] = time.time) -> None:
        self.source = source
        self.qmgr = qmgr
        self.path = storage_path
        self.port = listener_port
        self.wall = wall

    def collect(self) -> Iterator[Metric]:
        snap, tel = self.source()
        q, path = self.qmgr, self.path
        build = GaugeMetricFamily("mqguard_build_info", "mqguard build information.", labels=["version"])
        build.add_metric([__version__], 1)
        yield build

        state = snap.state if snap else State.WAITING_FOR_STORAGE.value
        yield StateSetMetricFamily(
            "mqguard_state", "What mqguard is doing (one state is 1).", value={s.value: s.value == state for s in State}
        )

        up = GaugeMetricFamily("mqguard_qmgr_up", "1 when the queue manager counts healthy.", labels=["qmgr"])
        up.add_metric([q], 1 if snap and snap.qmgr_healthy else 0)
        yield up

        status = GaugeMetricFamily(
            "mqguard_qmgr_status", "Last dspmq status of the queue manager (one status is 1; none before dspmq ran).",
            labels=["qmgr", "status"],
        )
        current = snap.qmgr_status if snap else None
        for st in ALL_STATUSES:
            status.add_metric([q, st.value], 1 if st.value == current else 0)
        yield status

        restarts = CounterMetricFamily("mqguard_qmgr_restarts", "Local restart attempts.", labels=["qmgr"])
        restarts.add_metric([q], snap.restarts if snap else 0)
        yield restarts

        budget = GaugeMetricFamily("mqguard_restart_budget_remaining",
                                   "Local restarts still allowed in the current restart_window.")
        budget.add_metric([], snap.restart_budget_remaining if snap else 0)
        yield budget

        listener = GaugeMetricFamily("mqguard_listener_up", "Listener TCP probe on 127.0.0.1.", labels=["qmgr", "port"])
        listener.add_metric([q, str(self.port)], 1 if snap and snap.listener_ok else 0)
        yield listener

        storage = GaugeMetricFamily("mqguard_storage_up", "EFS mounted with an accepted type and the probe ok.",
                                    labels=["path"])
        storage.add_metric([path], 1 if snap and snap.storage_ok else 0)
        yield storage

        yield _histogram("mqguard_storage_probe_seconds", "Latency of the EFS write/fsync/read probe.",
                         ("path",), (path,), tel.probe_seconds)

        cmd = HistogramMetricFamily("mqguard_command_seconds", "MQ control command latency.", labels=["command"])
        fails = CounterMetricFamily("mqguard_command_failures", "MQ control commands with a non-ok exit or a timeout.",
                                    labels=["command"])
        for name in sorted(set(KNOWN_COMMANDS) | set(tel.command_seconds)):
            _histogram("", "", ("command",), (name,), tel.command_seconds.get(name, Histogram(COMMAND_BUCKETS)), cmd)
            fails.add_metric([name], tel.command_failures.get(name, 0))
        yield cmd
        yield fails

        bad = GaugeMetricFamily("mqguard_bad_seconds", "Age of the current bad episode, 0 when good.")
        bad.add_metric([], max(0.0, self.wall() - snap.bad_since) if snap and snap.bad_since else 0.0)
        yield bad

        reported = GaugeMetricFamily("mqguard_unhealthy_reported", "1 once SetInstanceHealth(Unhealthy) succeeded.")
        reported.add_metric([], 1 if snap and snap.reported_unhealthy else 0)
        yield reported

        aws = CounterMetricFamily("mqguard_aws_calls", "Auto Scaling API attempts by result.",
                                  labels=["operation", "result"])
        for op, res in sorted(set((o, r) for o in OPERATIONS for r in AWS_RESULTS) | set(tel.aws_calls)):
            aws.add_metric([op, res], tel.aws_calls.get((op, res), 0))
        yield aws

        yield _histogram("mqguard_cycle_seconds", "Duration of one supervision cycle.", (), (), tel.cycle_seconds)
        errors = CounterMetricFamily("mqguard_cycle_errors", "Supervision cycles that ended in an exception "
                                     "(logged; the loop went on).")
        errors.add_metric([], tel.cycle_errors)
        yield errors

        last = GaugeMetricFamily("mqguard_last_cycle_timestamp_seconds",
                                 "End of the last supervision cycle (Unix time).")
        last.add_metric([], snap.last_cycle if snap and snap.last_cycle else 0.0)
        yield last

        mqsc = CounterMetricFamily("mqguard_mqsc_failures", "MQSC files that runmqsc could not fully apply.")
        mqsc.add_metric([], tel.mqsc_failures)
        yield mqsc

        paused = snap.paused if snap else None
        yield GaugeMetricFamily("mqguard_paused", "1 while an operator's pause is in force.",
                                value=1 if paused else 0)
        yield GaugeMetricFamily("mqguard_pause_expiry_timestamp_seconds",
                                "When the pause in force expires (Unix time); 0 when not paused.",
                                value=float(paused["until"]) if paused else 0.0)
        hooks = CounterMetricFamily("mqguard_hook_runs", "on_state_change runs by result.", labels=["result"])
        for result in HOOK_RESULTS:
            hooks.add_metric([result], tel.hook_runs.get(result, 0))
        yield hooks
        mq_msgs = CounterMetricFamily("mqguard_mq_error_messages", "Messages MQ wrote to its error logs "
                                      "(queue manager and system) that mqguard read, by severity.",
                                      labels=["severity"])
        for severity in SEVERITIES:
            mq_msgs.add_metric([severity], tel.mq_messages.get(severity, 0))
        yield mq_msgs
        yield GaugeMetricFamily("mqguard_state_dir_ok", "1 while mqguard's own <storage.path>/.mqguard is usable "
                                "(pause, create lock); never part of the storage verdict.",
                                value=0 if snap is not None and snap.state_dir_ok is False else 1)
        http = CounterMetricFamily("mqguard_http_connections", "HTTP connections closed at the connection cap: "
                                   "evicted to make room, or refused.", labels=["result"])
        for result in ("evicted", "refused"):
            http.add_metric([result], tel.http_connections.get(result, 0))
        yield http
        fdc = CounterMetricFamily("mqguard_mq_fdc_files", "FDC files MQ created that mqguard saw.")
        fdc.add_metric([], tel.fdc_files)
        yield fdc


HOOK_RESULTS = ("ok", "failed", "timeout", "error")


def build_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A private registry with mqguard's collectors and the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
