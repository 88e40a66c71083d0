"""The optional MQI/PCF view of the queue manager, through ibmmq or pymqi.

Both Python packages need IBM's C client library (``libmqm_r.so``), which only
exists where MQ is installed. With ``metrics.pcf = auto`` a missing package or
library is logged once and mqguard carries on with dspmq; with ``on`` it is a
configuration error. A poller thread keeps one bindings-mode connection open,
reconnects with backoff, and publishes a ``PcfView`` that the metrics collector
reads. MQI trouble is shown in metrics but never marks the instance bad.

Metric and label names follow IBM's mq-metric-samples Prometheus exporter so
existing dashboards work.
"""

from __future__ import annotations

import datetime
import fnmatch
import importlib
import logging
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mqguard.base.retry import Backoff

log = logging.getLogger(__name__)

# MQ constants (CMQC / CMQCFC), so that mapping recorded replies needs no library.
MQCA_Q_NAME = 2016
MQIA_CURRENT_Q_DEPTH = 3
MQIA_MAX_Q_DEPTH = 15
MQIA_OPEN_INPUT_COUNT = 17
MQIA_OPEN_OUTPUT_COUNT = 18
MQIA_Q_TYPE = 20
MQQT_LOCAL = 1
MQCACH_CHANNEL_NAME = 3501
MQIACH_CHANNEL_STATUS = 1527
MQIACF_Q_MGR_STATUS = 1149
MQIACF_CONNECTION_COUNT = 1230
MQCACF_Q_MGR_START_DATE = 3175
MQCACF_Q_MGR_START_TIME = 3176
MQRCCF_CHL_STATUS_NOT_FOUND = 3065
MQCHS_INACTIVE = 0

LIBRARIES = ("ibmmq", "pymqi")  # IBM's maintained package first


def load_library(names: Sequence[str] = LIBRARIES) -> Tuple[Optional[ModuleType], str]:
    """(module, "") or (None, why not) — distinguishing "not installed" from "no MQ client"."""
    reasons = []
    for name in names:
        try:
            return importlib.import_module(name), ""
        except ImportError as exc:
            chain: List[BaseException] = []
            e: Optional[BaseException] = exc
            while e is not None and len(chain) < 5:
                chain.append(e)
                e = e.__cause__ or e.__context__
            text = " / ".join(str(x) for x in chain)
            if "libmqm" in text:
                reasons.append(f"{name} is installed but the MQ client library is missing ({text.split(' / ')[-1]})")
            elif isinstance(exc, ModuleNotFoundError) and exc.name == name:
                reasons.append(f"{name} is not installed")
            else:
                reasons.append(f"{name} cannot be imported ({text})")
        except OSError as exc:  # some builds raise OSError for a missing shared library
            reasons.append(f"{name} is installed but cannot load the MQ client library ({exc})")
    return None, "; ".join(reasons)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip().rstrip("\0").strip()
    return str(value).strip()


@dataclass(frozen=True)
class QueueStats:
    depth: int
    max_depth: Optional[int] = None
    input_handles: Optional[int] = None
    output_handles: Optional[int] = None


@dataclass
class PcfView:
    """What the last successful PCF round found."""

    connected: bool = False
    error: str = ""
    qmgr_status: Optional[int] = None  # MQQMSTA_* as in mq-metric-samples
    uptime: Optional[float] = None
    connection_count: Optional[int] = None
    queues: Dict[str, QueueStats] = field(default_factory=dict)
    channels: Dict[str, int] = field(default_factory=dict)  # name -> MQCHS_*
    last_success: Optional[float] = None


def wanted_queue(name: str, patterns: Sequence[str]) -> bool:
    """fnmatch patterns; SYSTEM.* queues only when a pattern names SYSTEM explicitly."""
    for pattern in patterns:
        if name.startswith("SYSTEM.") and not pattern.startswith("SYSTEM"):
            continue
        if fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def map_qmgr_status(
    reply: Dict[int, Any], now: datetime.datetime
) -> Tuple[Optional[int], Optional[float], Optional[int]]:
    """(status, uptime seconds, connection count) from an INQUIRE_Q_MGR_STATUS reply.

    Start date/time are in the queue manager's local time ("2026-11-25", "21.59.36").
    """
    status = reply.get(MQIACF_Q_MGR_STATUS)
    conns = reply.get(MQIACF_CONNECTION_COUNT)
    uptime = None
    date, clock = _text(reply.get(MQCACF_Q_MGR_START_DATE, "")), _text(reply.get(MQCACF_Q_MGR_START_TIME, ""))
    if date and clock:
        try:
            started = datetime.datetime.strptime(f"{date} {clock}", "%Y-%m-%d %H.%M.%S")
            uptime = max(0.0, (now - started).total_seconds())
        except ValueError:
            uptime = None
    return (int(status) if status is not None else None, uptime, int(conns) if conns is not None else None)


def map_queues(replies: Sequence[Dict[int, Any]], patterns: Sequence[str]) -> Dict[str, QueueStats]:
    out: Dict[str, QueueStats] = {}
    for r in replies:
        name = _text(r.get(MQCA_Q_NAME, ""))
        if not name or MQIA_CURRENT_Q_DEPTH not in r or not wanted_queue(name, patterns):
            continue
        out[name] = QueueStats(
            int(r[MQIA_CURRENT_Q_DEPTH]), r.get(MQIA_MAX_Q_DEPTH), r.get(MQIA_OPEN_INPUT_COUNT),
            r.get(MQIA_OPEN_OUTPUT_COUNT),
        )
    return out


def map_channels(replies: Sequence[Dict[int, Any]], known: Dict[str, int]) -> Dict[str, int]:
    """Channels seen before but now absent are inactive (so their series stay, at 0)."""
    out = {name: MQCHS_INACTIVE for name in known}
    for r in replies:
        name = _text(r.get(MQCACH_CHANNEL_NAME, ""))
        if name and MQIACH_CHANNEL_STATUS in r:
            out[name] = int(r[MQIACH_CHANNEL_STATUS])
    return out


QUIET_AFTER_RELEASE = 15.0  # seconds without a bindings connection after release() (strmqm checks at its start)


class PcfPoller:
    """Keeps a bindings connection and refreshes the view every ``interval``."""

    def __init__(self, lib: ModuleType, qmgr: str, patterns: Sequence[str], interval: float,
                 stop: threading.Event, now: Callable[[], datetime.datetime] = datetime.datetime.now) -> None:
        self.lib = lib
        self.qmgr = qmgr
        self.patterns = patterns
        self.interval = interval
        self.stop = stop
        self.now = now
        self.view = PcfView()
        self._qm: Any = None
        self._pcf: Any = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._backoff = Backoff(base=interval, cap=max(60.0, interval))
        self._wake = threading.Event()
        self._released = threading.Event()
        self._quiet_until = 0.0

    def reconfigure(self, poll_interval: float) -> None:
        """A reload's [health] poll_interval (SIGHUP): the next refresh waits this long."""
        self.interval = poll_interval
        self._backoff = Backoff(base=poll_interval, cap=max(60.0, poll_interval))

    def release(self, timeout: float = 5.0) -> bool:
        """Drop the bindings connection before a start of the queue manager, and stay off for a while.

        A bindings connection makes mqguard's process one of the queue manager's
        connected processes: after a crash it keeps strmqm failing with AMQ8041
        (exit 24) until it disconnects. True once the poller holds no connection.
        """
        with self._lock:
            self._quiet_until = time.monotonic() + QUIET_AFTER_RELEASE
        self._released.clear()
        self._wake.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._disconnect()
            return True
        return self._released.wait(timeout)

    def _quiet_for(self) -> float:
        with self._lock:
            return self._quiet_until - time.monotonic()

    def _sleep(self, delay: float) -> None:
        self._wake.wait(delay)
        self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mqi-pcf", daemon=True)
        self._thread.start()

    def snapshot(self) -> PcfView:
        with self._lock:
            v = self.view
            return PcfView(v.connected, v.error, v.qmgr_status, v.uptime, v.connection_count, dict(v.queues),
                           dict(v.channels), v.last_success)

    def _loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            quiet = self._quiet_for()
            if quiet > 0:  # released for a start: no connection until it has begun
                self._disconnect()
                with self._lock:
                    self.view.connected = False
                    self.view.error = "disconnected while the queue manager is being started"
                self._released.set()
                self._sleep(quiet)
                continue
            try:
                self.poll_once()
                failures = 0
                delay = self.interval
            except Exception as exc:  # MQMIError, PYIFError, connection loss: never fatal
                failures += 1
                self._disconnect()
                with self._lock:
                    self.view.connected = False
                    self.view.error = str(exc)
                level = logging.INFO if failures == 1 else logging.DEBUG
                log.log(level, "MQI view of %s unavailable (%s); retrying with backoff", self.qmgr, exc)
                delay = self._backoff.delay(failures)
            if self._pcf is None:
                self._released.set()
            self._sleep(delay)
        self._disconnect()

    def poll_once(self) -> None:
        if self._pcf is None:
            self._qm = self.lib.connect(self.qmgr)  # no channel/conn_info: bindings mode
            self._pcf = self.lib.PCFExecute(self._qm)
            log.info("MQI view: connected to %s in bindings mode", self.qmgr)
        status, uptime, conns = map_qmgr_status(self._pcf.MQCMD_INQUIRE_Q_MGR_STATUS()[0], self.now())
        queues = map_queues(self._pcf.MQCMD_INQUIRE_Q({MQCA_Q_NAME: b"*", MQIA_Q_TYPE: MQQT_LOCAL}), self.patterns)
        try:
            chl = self._pcf.MQCMD_INQUIRE_CHANNEL_STATUS({MQCACH_CHANNEL_NAME: b"*"})
        except Exception as exc:
            if getattr(exc, "reason", None) != MQRCCF_CHL_STATUS_NOT_FOUND:
                raise
            chl = []  # no channel is running
        with self._lock:
            channels = map_channels(chl, self.view.channels)
            self.view = PcfView(True, "", status, uptime, conns, queues, channels, time.time())

    def _disconnect(self) -> None:
        qm, self._qm, self._pcf = self._qm, None, None
        if qm is not None:
            try:
                qm.disconnect()
            except Exception as exc:  # already broken
                log.debug("MQI disconnect: %s", exc)


class PcfCollector(Collector):
    """ibmmq_* families from the poller's last view (mq-metric-samples names and labels)."""

    def __init__(self, source: Callable[[], PcfView], qmgr: str) -> None:
        self.source = source
        self.qmgr = qmgr

    def collect(self) -> Iterator[Metric]:
        v = self.source()
        q = self.qmgr
        up = GaugeMetricFamily("mqguard_mqi_up", "1 when the MQI/PCF view of the queue manager answers.",
                               labels=["qmgr"])
        up.add_metric([q], 1 if v.connected else 0)
        yield up
        if v.last_success is None:
            return
        for name, doc, value in (
            ("ibmmq_qmgr_status", "Queue manager status (MQQMSTA_*: 1 starting, 2 running, 3 quiescing, 4 standby).",
             v.qmgr_status if v.connected else 0),
            ("ibmmq_qmgr_uptime", "Seconds since the queue manager started.", v.uptime),
            ("ibmmq_qmgr_connection_count", "Connections to the queue manager.", v.connection_count),
        ):
            if value is not None:
                fam = GaugeMetricFamily(name, doc, labels=["qmgr"])
                fam.add_metric([q], value)
                yield fam
        queue_families = {
            "depth": ("ibmmq_queue_depth", "Messages on the queue."),
            "max_depth": ("ibmmq_queue_attribute_max_depth", "MAXDEPTH of the queue."),
            "input_handles": ("ibmmq_queue_input_handles", "Handles open for input."),
            "output_handles": ("ibmmq_queue_output_handles", "Handles open for output."),
        }
        for attr, (name, doc) in queue_families.items():
            fam = GaugeMetricFamily(name, doc, labels=["qmgr", "queue"])
            for queue, stats in sorted(v.queues.items()):
                value = getattr(stats, attr)
                if value is not None:
                    fam.add_metric([q, queue], value)
            yield fam
        chl = GaugeMetricFamily("ibmmq_channel_status", "Channel status (MQCHS_*: 0 inactive, 3 running, 6 stopped …).",
                                labels=["qmgr", "channel"])
        for channel, status in sorted(v.channels.items()):
            chl.add_metric([q, channel], status)
        yield chl
