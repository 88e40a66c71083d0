"""``mqguard run``'s composition root: builds every part from the configuration, once.

``build_parts`` makes the supervision parts (MQ, storage, AWS, jobs) into a frozen
``Parts`` record (``Sensors``, ``Effectors``, ``LoopParts``); ``Daemon(parts, cfg,
machine, clock)`` runs the loop over them, and a test can build the same record with
fakes (tests/unit/supervisor/test_daemon_fakes.py). ``Service`` adds the edges that only
``mqguard run`` has (HTTP, control socket, state hook, MQI view, systemd, logging).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, List, Optional, Tuple

from mqguard import __version__
from mqguard import config as config_mod
from mqguard.aws.autoscaling import AutoScaling
from mqguard.aws.cfn import StackSignal
from mqguard.aws.creation import CreationRecord
from mqguard.aws.errors import AwsErrors
from mqguard.aws.imds import Imds
from mqguard.aws.lifecyclehooks import Hooks
from mqguard.aws.termination import TerminationWatch
from mqguard.base import logsetup
from mqguard.base.clock import Clock, SystemClock
from mqguard.base.notify import Notifier
from mqguard.base.telemetry import Telemetry
from mqguard.cluster.peers import PeerStorage
from mqguard.cluster.publisher import HostPublisher
from mqguard.config import Config, PcfMode, ReportMode
from mqguard.efs.pause import PauseWatch
from mqguard.efs.statedir import StateDirStatus, allowed_owners
from mqguard.efs.storage import MOUNTINFO, StorageProber, mount_check
from mqguard.history.summary import EpisodeSummary
from mqguard.history.writer import HistoryWriter, Identity
from mqguard.mq import mqi
from mqguard.mq.commands import build_runner
from mqguard.mq.control import MqControl
from mqguard.mq.diagnostics import Diagnostics, MqMessage, evidence_line
from mqguard.mq.level import LevelGuard
from mqguard.mq.lifecycle import Lifecycle
from mqguard.mq.listener import ListenerProbe
from mqguard.mq.pidwatch import ControllerWatch
from mqguard.mq.prepare import preparation_for
from mqguard.mq.service import build_service
from mqguard.serve.control import ControlServer
from mqguard.serve.http import HttpEndpoint
from mqguard.serve.metrics import MqguardCollector, build_registry
from mqguard.serve.operations import Operations
from mqguard.serve.statehook import StateHook
from mqguard.supervisor.daemon import Daemon
from mqguard.supervisor.jobs import Jobs
from mqguard.supervisor.machine import Machine
from mqguard.supervisor.parts import Effectors, HealthReader, LoopParts, Parts, Sensors
from mqguard.supervisor.reload import settings_from
from mqguard.supervisor.reporter import Reporter
from mqguard.supervisor.wakeup import WakePipe
from mqguard.supervisor.worker import Worker

log = logging.getLogger(__name__)


def build_parts(cfg: Config, config_path: Optional[str] = None, clock: Optional[Clock] = None,
                mountinfo: str = MOUNTINFO, telemetry: Optional[Telemetry] = None,
                notifier: Optional[Notifier] = None) -> Parts:
    clock = clock or SystemClock()
    telemetry = telemetry or Telemetry()
    qm = cfg.queue_manager
    runner = build_runner(cfg)
    runner.observers.append(lambda res, ok: telemetry.command(res.name, res.duration, ok))
    control = MqControl(qm, cfg.storage.path, runner, cfg.health.command_timeout)
    mounted = mount_check(cfg.storage.path, cfg.storage.fstypes, mountinfo)  # asked again right before writes
    service = build_service(cfg, control, os.environ, preparation_for(qm.create, qm.start_timeout, control,
                                                                      mounted=mounted))
    owners = allowed_owners(qm.run_as)
    diagnostics = Diagnostics(control.qmgr_errors_dir, control.root_errors_dir, telemetry.mq_message, telemetry.fdc,
                              owners=owners)
    runner.observers.append(diagnostics.on_command)
    wakeup = WakePipe()
    stop_event = threading.Event()
    aws_errors = AwsErrors()
    autoscaling: Optional[AutoScaling] = None
    termination: Optional[TerminationWatch] = None
    hooks: Optional[Hooks] = None
    signal: Optional[StackSignal] = None
    identity: Optional[Identity] = None
    host_identity = None
    if cfg.health.report == ReportMode.AUTOSCALING:
        imds = Imds(cfg.aws.imds_url)
        identity = _identity_from(imds)
        host_identity = _host_identity_from(imds)
        autoscaling = AutoScaling(imds, cfg.aws.region, cfg.aws.endpoint_url, observe=telemetry.aws_call)
        termination = TerminationWatch(imds, TerminationWatch.interval_for(cfg.health.poll_interval), stop_event,
                                       wakeup.wake)
        hooks = Hooks(autoscaling, cfg.aws.asg_name, cfg.aws.launch_hook, cfg.aws.termination_hook, stop_event,
                      errors=aws_errors)
        if cfg.aws.cfn_stack:
            signal = StackSignal(autoscaling, cfg.aws.cfn_stack, cfg.aws.cfn_resource, stop_event, aws_errors)
    # the group remembers a create, so that lost data is never taken for a first create (docs/deploying.md, "Updating")
    creation = CreationRecord(autoscaling, cfg.aws.asg_name, qm.name, stop_event, aws_errors) if autoscaling else None
    lifecycle = Lifecycle(control, qm.mqsc_dir, service, creation=creation, nha=cfg.native_ha)
    writers: List[HistoryWriter] = []  # the summary reads this host's file first: its name is the writer's
    summary = EpisodeSummary(cfg.storage.path, owners, clock.wall, telemetry.episode_seen,
                             host=lambda: writers[0].host if writers else "")
    history = HistoryWriter(cfg.storage.path, owners, clock.wall, telemetry.history_drop,
                            telemetry.history_write_error, identity=identity, after_write=summary.after_write,
                            written=telemetry.history_write, mounted=mounted, mount_point=True)
    writers.append(history)
    # MQ's own evidence (message ids, FDC names) goes into the history on EFS: it outlives the instance
    diagnostics.on_found = lambda found: _record_evidence(history, found)
    hosts = HostPublisher(cfg.storage.path, owners, clock.wall, clock.monotonic, qm.name, __version__,
                          cfg.metrics.listen, identity=host_identity, mq_level=control.known_mq_version,
                          mounted=mounted, mount_point=True)
    reporter = Reporter(cfg.health.report, autoscaling, cfg.health.respect_asg_grace_period, stop_event,
                        on_reported=wakeup.wake, errors=aws_errors, record=history.record, flush=history.flush)
    prober = StorageProber(cfg.storage.path, owners, (control.data_parent, control.log_parent), mounted=mounted,
                           mount_point=True, own_dirs=control.own_dirs)
    pause_watch = PauseWatch(cfg.storage.path, owners, wakeup.wake, pause_max=cfg.control.pause_max,
                             wall=clock.wall)  # shared by the pair, on EFS
    worker = Worker(wakeup.wake)
    jobs = Jobs(qm, lifecycle, hooks, telemetry, wakeup.wake, history.record,
                levels=LevelGuard(cfg.storage.path, owners, qm.name, control.mq_version, mount_point=True),
                clock=clock)
    peers = PeerStorage(cfg.storage.path, owners, lambda: hosts.key, lambda: cfg.health.poll_interval,
                        clock.monotonic, clock.wall, probe_timeout=lambda: cfg.storage.probe_timeout)
    sense = Sensors(
        clock=clock, mountinfo=mountinfo, prober=prober, state_dir=StateDirStatus(), pause_watch=pause_watch,
        worker=worker, jobs=jobs, diagnostics=diagnostics, control=control,
        listener=ListenerProbe(qm.listener_port, clock.monotonic), peers=peers, termination=termination,
        telemetry=telemetry)
    act = Effectors(
        worker=worker, jobs=jobs, lifecycle=lifecycle, control=control, runner=runner, diagnostics=diagnostics,
        reporter=reporter, hooks=hooks, signal=signal, history=history, owners=owners)
    readers: List[HealthReader] = [control, reporter]
    if termination is not None:
        readers.append(termination)
    loop = LoopParts(
        config_path=config_path, notifier=notifier or Notifier({}), wakeup=wakeup,
        watch=ControllerWatch(qm.name, bin_dir=qm.mq_bin_dir, owners=owners), stop_event=stop_event,
        aws_errors=aws_errors, autoscaling=autoscaling, service=service, hosts=hosts,
        health_readers=tuple(readers))
    return Parts(sense=sense, act=act, loop=loop)


def _identity_from(imds: Imds) -> Identity:
    """(instance id, availability zone) from IMDS, for the history; asked on the writer's thread."""
    def identity() -> Tuple[str, str]:
        iid = imds.get("meta-data/instance-id", within=2.0)
        try:
            az = imds.get("meta-data/placement/availability-zone", within=2.0)
        except Exception:  # not every IMDS answers it (or answers in time): the id is what matters
            az = ""
        return iid, az
    return identity


def _record_evidence(history: HistoryWriter, found: List[MqMessage]) -> None:
    line = evidence_line(found)
    if line:
        history.record("mq_errors", line)


def _host_identity_from(imds: Imds) -> Callable[[], Tuple[str, str, str]]:
    """(instance id, availability zone, private address) for this host's record; asked on its writer's thread."""
    identity = _identity_from(imds)

    def host_identity() -> Tuple[str, str, str]:
        iid, az = identity()
        try:
            address = imds.get("meta-data/local-ipv4", within=2.0)
        except Exception:  # the peers then ask the host name
            address = ""
        return iid, az, address
    return host_identity


def build_daemon(cfg: Config, config_path: Optional[str] = None, telemetry: Optional[Telemetry] = None,
                 notifier: Optional[Notifier] = None) -> Daemon:
    parts = build_parts(cfg, config_path, telemetry=telemetry, notifier=notifier)
    clock = parts.sense.clock
    return Daemon(parts, cfg, Machine(settings_from(cfg), started_at=clock.monotonic()), clock)


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


class Service:
    """``mqguard run``: the daemon plus the edges an operator and Prometheus talk to."""

    def __init__(self, cfg: Config, config_path: str) -> None:
        self.cfg = cfg
        notifier = Notifier()
        context = logsetup.Context(cfg.queue_manager.name)
        self.log_target = logsetup.setup(cfg.logging.level, cfg.logging.format, context=context,
                                         journal=notifier.enabled and logsetup.under_journald())
        lib, why = mqi_library(cfg)
        self.daemon = d = build_daemon(cfg, config_path, notifier=notifier)
        self.parts = p = d.parts
        context.state = lambda: d.machine.state.value
        self.stop_event = threading.Event()
        self.poller: Optional[mqi.PcfPoller] = None
        collectors: List[object] = [MqguardCollector(
            lambda: (d.snapshot(), p.sense.telemetry.snapshot()), cfg.queue_manager.name, cfg.storage.path,
            cfg.queue_manager.listener_port)]
        if lib is not None:
            self.poller = mqi.PcfPoller(lib, cfg.queue_manager.name, cfg.metrics.queues,  # type: ignore[arg-type]
                                        cfg.health.poll_interval, self.stop_event)
            collectors.append(mqi.PcfCollector(self.poller.snapshot, cfg.queue_manager.name))
            p.act.jobs.before_start.append(self.poller.release)
            d.reload_listeners.append(lambda new: self.poller.reconfigure(new.health.poll_interval)
                                      if self.poller is not None else None)
        elif cfg.metrics.pcf == PcfMode.AUTO:
            log.info("MQI/PCF metrics off: %s; supervising with dspmq only", why)
        registry = build_registry(collectors)  # type: ignore[arg-type]
        operations = Operations(lambda: d.cfg, p.act.control, p.sense.pause_watch, p.act.owners, p.loop.wakeup.wake,
                                record=p.act.history.record, ask=d.ask, mount_point=True)
        self.control = ControlServer(cfg.control.socket, cfg.control.group, operations.handle)
        self.hook: Optional[StateHook] = None
        if cfg.hooks.on_state_change:
            asg = p.loop.autoscaling
            self.hook = hook = StateHook(cfg.hooks.on_state_change, cfg.hooks.timeout, cfg.queue_manager.name,
                                         lambda: asg.known_instance_id() if asg is not None else None,
                                         p.sense.telemetry.hook_run,
                                         pass_aws_credentials=cfg.hooks.pass_aws_credentials)
            d.state_listeners.append(lambda new, old, reason, role: hook.notify(new.value, old.value, reason, role))
        self.http: Optional[HttpEndpoint] = None
        if cfg.metrics.listen is not None:
            host, port = cfg.metrics.listen
            self.http = HttpEndpoint(host, port, d.snapshot, registry,
                                     lambda: stale_after(d.cfg),  # follows a reloaded poll_interval
                                     count=p.sense.telemetry.http_connection)

    def run(self) -> int:
        self.daemon.install_signal_handlers()
        if self.http is not None:
            self.http.start()  # bind errors surface here, before READY=1
        try:
            self.control.start()
        except OSError as exc:  # supervision matters more than the operator's socket: go on without it
            log.error("control socket %s unavailable (%s): mqguard pause, resume, switchover and drill will not "
                      "work", self.cfg.control.socket, exc)
        if self.poller is not None:
            self.poller.start()
        self.parts.act.reporter.preflight()
        self.parts.loop.notifier.ready(f"mqguard started; supervising queue manager {self.cfg.queue_manager.name}")
        log.info("logging to %s; systemd notify %s", self.log_target,
                 "on" if self.parts.loop.notifier.enabled else "off")
        try:
            return self.daemon.run()
        finally:
            self.stop_event.set()
            self.control.stop()
            if self.hook is not None:
                self.hook.stop()
            if self.http is not None:
                self.http.stop()
            self.parts.loop.notifier.close()
