"""Prometheus metrics, built at scrape time from the last snapshot.

A custom collector reads the daemon's ``Snapshot``, its ``Telemetry`` and the
last MQI/PCF view; nothing here runs a command or touches EFS. Each daemon
(and each test) builds its own registry: nothing is registered globally.

One scrape reads the snapshot and the telemetry once, so every family agrees
with every other; the families are built by one small function per concern
(the queue manager, storage, commands, the episode and AWS, the loop,
operations, diagnostics), as client_python keeps one small collector each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from mqguard.base.telemetry import COMMAND_BUCKETS, Histogram, Telemetry
from mqguard.mq.diagnostics import SEVERITIES
from mqguard.mq.status import ALL_STATUSES
from mqguard.supervisor.model import State
from mqguard.supervisor.snapshot import Snapshot

KNOWN_COMMANDS = ("dspmq", "dspmqinf", "addmqinf", "crtmqm", "strmqm", "endmqm", "runmqsc")
AWS_RESULTS = ("ok", "error", "throttled")
HOOK_RESULTS = ("ok", "failed", "timeout", "error")

Source = Callable[[], Tuple[Optional[Snapshot], Telemetry]]


@dataclass(frozen=True)
class Scrape:
    """What one scrape reads, once: the snapshot, the counters, and the fixed labels."""

    snap: Optional[Snapshot]
    tel: Telemetry
    qmgr: str
    path: str
    port: int
    now: float  # wall: timestamps
    monotonic: float  # ages (a stepped wall clock must not age a bad episode)


def _histogram(name: str, doc: str, labels: Tuple[str, ...], values: Tuple[str, ...], h: Histogram,
               family: Optional[HistogramMetricFamily] = None) -> HistogramMetricFamily:
    fam = family or HistogramMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(values), h.cumulative(), h.total)
    return fam


def _gauge(name: str, doc: str, labels: Tuple[str, ...], values: Tuple[str, ...], value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(values), value)
    return fam


def _counter(name: str, doc: str, labels: Tuple[str, ...], values: Tuple[str, ...],
             value: float) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(values), value)
    return fam


def queue_manager_families(s: Scrape) -> Iterator[Metric]:
    snap, q = s.snap, s.qmgr
    yield _gauge("mqguard_build_info", "mqguard build information.", ("version",), (__version__,), 1)
    state = snap.state if snap else State.WAITING_FOR_STORAGE.value
    yield StateSetMetricFamily(
        "mqguard_state", "What mqguard is doing (one state is 1).", value={x.value: x.value == state for x in State}
    )
    yield _gauge("mqguard_qmgr_up", "1 when the queue manager counts healthy.", ("qmgr",), (q,),
                 1 if snap and snap.qmgr_healthy else 0)
    status = GaugeMetricFamily(
        "mqguard_qmgr_status", "Last dspmq status of the queue manager (one status is 1; none before dspmq ran).",
        labels=["qmgr", "status"],
    )
    current = snap.qmgr_status if snap else None
    for st in ALL_STATUSES:
        status.add_metric([q, st.value], 1 if st.value == current else 0)
    yield status
    yield _counter("mqguard_qmgr_restarts", "Local restart attempts.", ("qmgr",), (q,), snap.restarts if snap else 0)
    yield _gauge("mqguard_restart_budget_remaining", "Local restarts still allowed in the current restart_window.",
                 (), (), snap.restart_budget_remaining if snap else 0)
    yield _gauge("mqguard_listener_up", "Listener TCP probe on 127.0.0.1.", ("qmgr", "port"), (q, str(s.port)),
                 1 if snap and snap.listener_ok else 0)


def storage_families(s: Scrape) -> Iterator[Metric]:
    yield _gauge("mqguard_storage_up", "EFS mounted with an accepted type and the probe ok.", ("path",), (s.path,),
                 1 if s.snap and s.snap.storage_ok else 0)
    yield _histogram("mqguard_storage_probe_seconds", "Latency of the EFS write/fsync/read probe.",
                     ("path",), (s.path,), s.tel.probe_seconds)
    yield GaugeMetricFamily("mqguard_state_dir_ok", "1 while mqguard's own <storage.path>/.mqguard is usable "
                            "(pause, create lock); never part of the storage verdict.",
                            value=0 if s.snap is not None and s.snap.state_dir_ok is False else 1)


def command_families(s: Scrape) -> Iterator[Metric]:
    tel = s.tel
    cmd = HistogramMetricFamily("mqguard_command_seconds", "MQ control command latency.", labels=["command"])
    fails = CounterMetricFamily("mqguard_command_failures", "MQ control commands with a non-ok exit or a timeout.",
                                labels=["command"])
    for name in sorted(set(KNOWN_COMMANDS) | set(tel.command_seconds)):
        _histogram("", "", ("command",), (name,), tel.command_seconds.get(name, Histogram(COMMAND_BUCKETS)), cmd)
        fails.add_metric([name], tel.command_failures.get(name, 0))
    yield cmd
    yield fails


def episode_families(s: Scrape) -> Iterator[Metric]:
    """The bad episode, the Unhealthy report and the AWS calls that carry it."""
    snap, tel = s.snap, s.tel
    yield _gauge("mqguard_bad_seconds", "Age of the current bad episode, 0 when good.", (), (),
                 snap.bad_seconds + max(0.0, s.monotonic - snap.composed_at) if snap and snap.bad_since else 0.0)
    yield _gauge("mqguard_unhealthy_reported", "1 once SetInstanceHealth(Unhealthy) succeeded.", (), (),
                 1 if snap and snap.reported_unhealthy else 0)
    aws = CounterMetricFamily("mqguard_aws_calls", "Auto Scaling API attempts by result.",
                              labels=["operation", "result"])
    for op, res in sorted(set((o, r) for o in OPERATIONS for r in AWS_RESULTS) | set(tel.aws_calls)):
        aws.add_metric([op, res], tel.aws_calls.get((op, res), 0))
    yield aws


def loop_families(s: Scrape) -> Iterator[Metric]:
    yield _histogram("mqguard_cycle_seconds", "Duration of one supervision cycle.", (), (), s.tel.cycle_seconds)
    yield _counter("mqguard_cycle_errors", "Supervision cycles that ended in an exception (logged; the loop went on).",
                   (), (), s.tel.cycle_errors)
    yield _gauge("mqguard_last_cycle_timestamp_seconds", "End of the last supervision cycle (Unix time).", (), (),
                 s.snap.last_cycle if s.snap and s.snap.last_cycle else 0.0)


def operation_families(s: Scrape) -> Iterator[Metric]:
    """What operators and their hooks asked for: MQSC, the pause, on_state_change."""
    tel = s.tel
    yield _counter("mqguard_mqsc_failures", "MQSC files that runmqsc could not fully apply.", (), (), tel.mqsc_failures)
    paused = s.snap.paused if s.snap else None
    yield GaugeMetricFamily("mqguard_paused", "1 while an operator's pause is in force.", value=1 if paused else 0)
    yield GaugeMetricFamily("mqguard_pause_expiry_timestamp_seconds",
                            "When the pause in force expires (Unix time); 0 when not paused.",
                            value=float(paused.until) if paused else 0.0)
    hooks = CounterMetricFamily("mqguard_hook_runs", "on_state_change runs by result.", labels=["result"])
    for result in HOOK_RESULTS:
        hooks.add_metric([result], tel.hook_runs.get(result, 0))
    yield hooks


def diagnostic_families(s: Scrape) -> Iterator[Metric]:
    """MQ's own error logs and FDCs, and the HTTP port's connection cap."""
    tel = s.tel
    mq_msgs = CounterMetricFamily("mqguard_mq_error_messages", "Messages MQ wrote to its error logs "
                                  "(queue manager and system) that mqguard read, by severity.", labels=["severity"])
    for severity in SEVERITIES:
        mq_msgs.add_metric([severity], tel.mq_messages.get(severity, 0))
    yield mq_msgs
    yield _counter("mqguard_mq_fdc_files", "FDC files MQ created that mqguard saw.", (), (), tel.fdc_files)
    http = CounterMetricFamily("mqguard_http_connections", "HTTP connections closed at the connection cap: "
                               "evicted to make room, or refused.", labels=["result"])
    for result in ("evicted", "refused"):
        http.add_metric([result], tel.http_connections.get(result, 0))
    yield http


EPISODE_KINDS = ("recovery", "failover", "switchover", "drill")


def history_families(s: Scrape) -> Iterator[Metric]:
    """The failover history on EFS (docs/operating.md, "Failover evidence"): how well it is written, and the last
    episodes it shows."""
    tel = s.tel
    yield _counter("mqguard_history_events", "History events this host appended to its file on EFS.", (), (),
                   tel.history_written)
    yield _counter("mqguard_history_dropped", "History events lost: EFS hung with the queue full, or the write "
                   "failed.", (), (), tel.history_dropped)
    yield _counter("mqguard_history_write_errors", "History writes that failed (EFS error, a refused link or "
                   "file type).", (), (), tel.history_write_errors)
    outage = GaugeMetricFamily("mqguard_last_episode_outage_seconds", "Time with no active instance in the last "
                               "finished episode of each kind, as the shared history shows it.", labels=["kind"])
    ended = GaugeMetricFamily("mqguard_last_episode_timestamp_seconds", "When the last finished episode of each "
                              "kind ended (Unix time); 0 when none is in the history.", labels=["kind"])
    for kind in EPISODE_KINDS:
        seconds, when = tel.last_episode.get(kind, (0.0, 0.0))
        outage.add_metric([kind], seconds)
        ended.add_metric([kind], when)
    yield outage
    yield ended


NHA_ROLES = ("active", "replica", "unknown")


def native_ha_families(s: Scrape) -> Iterator[Metric]:
    """Native HA (contract section 28), only with ha = native_ha: this instance's role, whether it is in sync,
    the group's in-sync instances and the backlog (on the active: the most a replica has still to acknowledge)."""
    snap = s.snap
    if snap is None or not snap.native_ha:
        return
    nha = snap.nha
    role = GaugeMetricFamily("mqguard_nha_role", "Native HA role of this host's instance (one role is 1; all 0 "
                             "while it does not run).", labels=["qmgr", "role"])
    for r in NHA_ROLES:
        role.add_metric([s.qmgr, r], 1 if nha is not None and nha["role"] == r else 0)
    yield role
    yield _gauge("mqguard_nha_insync", "1 when this host's Native HA instance is in sync (could take over).",
                 ("qmgr",), (s.qmgr,), 1 if nha is not None and nha["insync"] else 0)
    yield _gauge("mqguard_nha_quorum_instances", "In-sync instances of the Native HA group, as this instance sees "
                 "them (the active's view is definitive; 2 of 3 are needed).", ("qmgr",), (s.qmgr,),
                 nha["quorum_instances"] if nha is not None else 0)
    backlog = GaugeMetricFamily("mqguard_nha_backlog_bytes", "Log bytes written by the active and not yet "
                                "acknowledged (absent while not known).", labels=["qmgr"])
    if nha is not None and nha["backlog_bytes"] is not None:
        backlog.add_metric([s.qmgr], nha["backlog_bytes"])
    yield backlog


CONCERNS = (queue_manager_families, storage_families, command_families, episode_families, loop_families,
            operation_families, diagnostic_families, history_families, native_ha_families)


class MqguardCollector(Collector):
    """All ``mqguard_*`` metrics of the contract, from one consistent snapshot."""

    def __init__(self, source: Source, qmgr: str, storage_path: str, listener_port: int,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.qmgr = qmgr
        self.path = storage_path
        self.port = listener_port
        self.wall = wall
        self.monotonic = monotonic

    def collect(self) -> Iterator[Metric]:
        snap, tel = self.source()
        scrape = Scrape(snap, tel, self.qmgr, self.path, self.port, self.wall(), self.monotonic())
        for concern in CONCERNS:
            yield from concern(scrape)


def build_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A private registry with mqguard's collectors and the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
