"""``mqguard run``: wires the daemon to its edges (HTTP, metrics, MQI, systemd, logging).

The composition root: each part below knows nothing of the others.
"""

from __future__ import annotations

import logging
import threading
from typing import List, Optional, Tuple

from mqguard import config as config_mod
from mqguard import logsetup, mqi
from mqguard.config import Config, PcfMode
from mqguard.httpserver import HttpEndpoint
from mqguard.metrics import MqguardCollector, build_registry
from mqguard.notify import Notifier
from mqguard.supervisor.daemon import Daemon
from mqguard.supervisor.snapshot import Snapshot
from mqguard.telemetry import Telemetry

log = logging.getLogger(__name__)


def stale_after(cfg: Config) -> float:
    """After this long without a completed cycle, /healthz says the loop has stalled."""
    h, st = cfg.health, cfg.storage
    return 3 * h.poll_interval + 2 * h.command_timeout + st.probe_timeout + 10


def mqi_library(cfg: Config) -> Tuple[Optional[object], str]:
    """The MQI library per metrics.pcf; ConfigError for ``on`` without one."""
    if cfg.metrics.pcf == PcfMode.OFF:
        return None, "metrics.pcf = off"
    lib, why = mqi.load_library()
    if lib is None and cfg.metrics.pcf == PcfMode.ON:
        raise config_mod.error_for(cfg, "metrics", "pcf", "on",
                                   f"expected auto or off here: the MQI view is not available ({why})")
    return lib, why


class App:
    def __init__(self, cfg: Config, config_path: str) -> None:
        self.cfg = cfg
        self.notifier = Notifier()
        self.context = logsetup.Context(cfg.queue_manager.name)
        self.log_target = logsetup.setup(
            cfg.logging.level, cfg.logging.format, context=self.context,
            journal=self.notifier.enabled and logsetup.under_journald(),
        )
        lib, why = mqi_library(cfg)
        self.telemetry = Telemetry()
        self.daemon = Daemon(cfg, telemetry=self.telemetry, config_path=config_path, notifier=self.notifier)
        self.context.state = lambda: self.daemon.machine.state.value
        self.stop_event = threading.Event()
        self.poller: Optional[mqi.PcfPoller] = None
        collectors: List[object] = [MqguardCollector(
            self._metrics_source, cfg.queue_manager.name, cfg.storage.path, cfg.queue_manager.listener_port,
        )]
        if lib is not None:
            self.poller = mqi.PcfPoller(lib, cfg.queue_manager.name, cfg.metrics.queues,  # type: ignore[arg-type]
                                        cfg.health.poll_interval, self.stop_event)
            collectors.append(mqi.PcfCollector(self.poller.snapshot, cfg.queue_manager.name))
        elif cfg.metrics.pcf == PcfMode.AUTO:
            log.info("MQI/PCF metrics off: %s; supervising with dspmq only", why)
        self.registry = build_registry(collectors)  # type: ignore[arg-type]
        self.http: Optional[HttpEndpoint] = None
        if cfg.metrics.listen is not None:
            host, port = cfg.metrics.listen
            self.http = HttpEndpoint(host, port, self.daemon.snapshot, self.registry,
                                     lambda: stale_after(self.daemon.cfg))  # follows a reloaded poll_interval

    def _metrics_source(self) -> Tuple[Optional[Snapshot], Telemetry]:
        return self.daemon.snapshot(), self.telemetry.snapshot()

    def run(self) -> int:
        self.daemon.install_signal_handlers()
        if self.http is not None:
            self.http.start()  # bind errors surface here, before READY=1
        if self.poller is not None:
            self.poller.start()
        self.daemon.reporter.preflight()
        self.notifier.ready(f"mqguard started; supervising queue manager {self.cfg.queue_manager.name}")
        log.info("logging to %s; systemd notify %s", self.log_target, "on" if self.notifier.enabled else "off")
        try:
            return self.daemon.run()
        finally:
            self.stop_event.set()
            if self.http is not None:
                self.http.stop()
            self.notifier.close()
