"""``mqguard run``: wires the daemon to its edges (HTTP, control socket, hooks, metrics, MQI, systemd, logging).

The composition root: each part below knows nothing of the others.
"""

from __future__ import annotations

import logging
import threading
from typing import List, Optional, Tuple

from mqguard import config as config_mod
from mqguard.base import logsetup
from mqguard.config import Config, PcfMode
from mqguard.mq import mqi
from mqguard.serve.control import ControlServer
from mqguard.serve.http import HttpEndpoint
from mqguard.serve.metrics import MqguardCollector, build_registry
from mqguard.serve.notify import Notifier
from mqguard.serve.telemetry import Telemetry
from mqguard.supervisor.daemon import Daemon
from mqguard.supervisor.operations import Operations
from mqguard.supervisor.snapshot import Snapshot
from mqguard.supervisor.statehook import StateHook

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
            self.daemon.jobs.before_start.append(self.poller.release)
        elif cfg.metrics.pcf == PcfMode.AUTO:
            log.info("MQI/PCF metrics off: %s; supervising with dspmq only", why)
        self.registry = build_registry(collectors)  # type: ignore[arg-type]
        d = self.daemon
        self.operations = Operations(lambda: d.cfg, d.control, d.lifecycle, d.worker, d.pause_watch, d.owners,
                                     d.wake)
        self.control = ControlServer(cfg.control.socket, cfg.control.group, self.operations.handle)
        self.hook: Optional[StateHook] = None
        if cfg.hooks.on_state_change:
            self.hook = StateHook(cfg.hooks.on_state_change, cfg.hooks.timeout, cfg.queue_manager.name,
                                  self._instance_id, self.telemetry.hook_run,
                                  pass_aws_credentials=cfg.hooks.pass_aws_credentials)
            hook = self.hook
            d.state_listeners.append(lambda new, old, reason, role: hook.notify(new.value, old.value, reason, role))
        self.http: Optional[HttpEndpoint] = None
        if cfg.metrics.listen is not None:
            host, port = cfg.metrics.listen
            self.http = HttpEndpoint(host, port, self.daemon.snapshot, self.registry,
                                     lambda: stale_after(self.daemon.cfg),  # follows a reloaded poll_interval
                                     count=self.telemetry.http_connection)

    def _instance_id(self) -> Optional[str]:
        asg = self.daemon.autoscaling
        return asg.known_instance_id() if asg is not None else None

    def _metrics_source(self) -> Tuple[Optional[Snapshot], Telemetry]:
        return self.daemon.snapshot(), self.telemetry.snapshot()

    def run(self) -> int:
        self.daemon.install_signal_handlers()
        if self.http is not None:
            self.http.start()  # bind errors surface here, before READY=1
        try:
            self.control.start()
        except OSError as exc:  # supervision matters more than the operator's socket: go on without it
            log.error("control socket %s unavailable (%s): mqguard pause, resume and switchover will not work",
                      self.cfg.control.socket, exc)
        if self.poller is not None:
            self.poller.start()
        self.daemon.reporter.preflight()
        self.notifier.ready(f"mqguard started; supervising queue manager {self.cfg.queue_manager.name}")
        log.info("logging to %s; systemd notify %s", self.log_target, "on" if self.notifier.enabled else "off")
        try:
            return self.daemon.run()
        finally:
            self.stop_event.set()
            self.control.stop()
            if self.hook is not None:
                self.hook.stop()
            if self.http is not None:
                self.http.stop()
            self.notifier.close()
