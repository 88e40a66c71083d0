"""The daemon: observe, ask the state machine, carry out its actions, wait.

Everything with side effects lives here or below (storage, mq, aws); the
decisions live in ``machine.py``. Signal handlers only set flags; the loop
wakes on a self-pipe, on the amqzxma0 pidfd (crash detection within
milliseconds), on a finished job, or when the next poll is due.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Callable, List, Optional

from mqguard import __version__
from mqguard import config as config_mod
from mqguard.aws.autoscaling import AutoScaling
from mqguard.aws.errors import AwsErrors
from mqguard.aws.imds import Imds
from mqguard.aws.lifecyclehooks import Hooks
from mqguard.aws.termination import SPOT, TERMINATING, TerminationWatch
from mqguard.base.clock import Clock, SystemClock
from mqguard.config import Config, ReportMode, StopOnExit
from mqguard.efs.pause import Pause, PauseWatch
from mqguard.efs.statedir import StateDirStatus, allowed_owners
from mqguard.efs.storage import MOUNTINFO, StorageProber, check_mount, mount_check
from mqguard.mq.control import MqControl
from mqguard.mq.diagnostics import Diagnostics
from mqguard.mq.lifecycle import Lifecycle
from mqguard.mq.listener import ListenerProbe
from mqguard.mq.pidwatch import ControllerWatch, wait_for_wake
from mqguard.mq.prepare import preparation_for
from mqguard.mq.service import Role, build_service, role_of
from mqguard.mq.status import QmStatus
from mqguard.proc.runner import build_runner
from mqguard.serve.notify import Notifier
from mqguard.serve.telemetry import Telemetry
from mqguard.supervisor.cycleguard import CycleGuard, next_due
from mqguard.supervisor.jobs import Jobs
from mqguard.supervisor.machine import (
    Action,
    ActionKind,
    JobOutcome,
    Machine,
    Observation,
    State,
    Verdict,
)
from mqguard.supervisor.publish import Outside, compose
from mqguard.supervisor.reload import reloaded, settings_from
from mqguard.supervisor.reporter import Reporter
from mqguard.supervisor.snapshot import Snapshot
from mqguard.supervisor.stopping import JobAtExit, exit_plan, host_is_stopping, should_end_qmgr
from mqguard.supervisor.worker import Worker

log = logging.getLogger(__name__)

JOB_DRAIN_TIMEOUT = 10.0  # at shutdown, how long to let a running job finish
_ROLES = {QmStatus.RUNNING: "active", QmStatus.RUNNING_AS_STANDBY: "standby"}  # MQGUARD_ROLE for hooks
SHUTDOWN_IMDS_DEADLINE = 1.5  # per path: a slow IMDS must not hold up a stop (the answer then is "stays")


class Daemon:
    def __init__(
        self,
        cfg: Config,
        clock: Optional[Clock] = None,
        mountinfo: str = MOUNTINFO,
        telemetry: Optional[Telemetry] = None,
        config_path: Optional[str] = None,
        notifier: Optional[Notifier] = None,
    ) -> None:
        self.cfg = cfg
        self.notifier = notifier or Notifier({})
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.mountinfo = mountinfo
        self.telemetry = telemetry or Telemetry()
        self.runner = build_runner(cfg)
        self.runner.observers.append(lambda res, ok: self.telemetry.command(res.name, res.duration, ok))
        qm = cfg.queue_manager
        self.control = MqControl(qm, cfg.storage.path, self.runner, cfg.health.command_timeout)
        mounted = mount_check(cfg.storage.path, cfg.storage.fstypes, mountinfo)  # asked again right before writes
        preparation = preparation_for(qm.create, qm.start_timeout, self.control, mounted=mounted)
        self.service = build_service(cfg, self.control, os.environ, preparation)
        self.lifecycle = Lifecycle(self.control, qm.mqsc_dir, self.service)
        self.diagnostics = Diagnostics(self.control.qmgr_errors_dir, self.control.root_errors_dir,
                                       self.telemetry.mq_message, self.telemetry.fdc)
        self.runner.observers.append(self.diagnostics.on_command)
        self.owners = allowed_owners(qm.run_as)
        self.prober = StorageProber(cfg.storage.path, self.owners, (self.control.data_parent, self.control.log_parent),
                                    mounted=mounted)
        self.state_dir = StateDirStatus()  # .mqguard: said once per change, never MQ's storage verdict
        self.pause_watch = PauseWatch(cfg.storage.path, self.owners, self.wake,  # shared by the pair, on EFS
                                      pause_max=cfg.control.pause_max, wall=self.clock.wall)
        self.state_listeners: List[Callable[[State, State, str, str], None]] = []  # (new, old, reason, role)
        self.watch = ControllerWatch(qm.name, bin_dir=qm.mq_bin_dir)
        self.listener = ListenerProbe(qm.listener_port, self.clock.monotonic)
        self.stop_event = threading.Event()  # set when shutting down: ends retries
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.worker = Worker(self.wake)
        # report = log is a dry run that makes no AWS call at all, metadata included;
        # then "going away" is known only from the host shutting down.
        self.aws_errors = AwsErrors()
        self.autoscaling: Optional[AutoScaling] = None
        self.termination: Optional[TerminationWatch] = None
        self.hooks: Optional[Hooks] = None
        if cfg.health.report == ReportMode.AUTOSCALING:
            self.imds = Imds(cfg.aws.imds_url)
            self.autoscaling = AutoScaling(
                self.imds, cfg.aws.region, cfg.aws.endpoint_url, observe=self.telemetry.aws_call
            )
            self.termination = TerminationWatch(
                self.imds, min(5.0, cfg.health.poll_interval), self.stop_event, self.wake
            )
            self.hooks = Hooks(self.autoscaling, cfg.aws.asg_name, cfg.aws.launch_hook, cfg.aws.termination_hook,
                               self.stop_event, errors=self.aws_errors)
        self.reporter = Reporter(
            cfg.health.report, self.autoscaling, cfg.health.respect_asg_grace_period, self.stop_event,
            on_reported=self.wake, errors=self.aws_errors,
        )
        self.machine = Machine(settings_from(cfg), started_at=self.clock.monotonic())
        self.jobs = Jobs(lambda: self.cfg.queue_manager, self.lifecycle, self.hooks, self.telemetry, self.wake,
                         self._role, lambda: self.going_away)
        self.cycles = 0
        self._stop_requested = False
        self._reload_requested = False
        self._last_key: tuple[object, ...] = ()
        self._last_state: Optional[State] = None
        self._snapshot_lock = threading.Lock()
        self._snapshot: Optional[Snapshot] = None
        self._last_obs: Optional[Observation] = None
        self.started = self.clock.monotonic()
        self.cycle_guard = CycleGuard(self.telemetry.cycle_error, self.clock.monotonic)

    # ----------------------------------------------------------- plumbing
    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # pipe full: a wake-up is already pending

    def _on_stop_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self._stop_requested = True

    def _on_hup(self, signum: int, frame: Optional[FrameType]) -> None:
        self._reload_requested = True

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def snapshot(self) -> Optional[Snapshot]:
        with self._snapshot_lock:
            return self._snapshot

    # ---------------------------------------------------------- main loop
    def run(self) -> int:
        log.info(
            "mqguard %s supervising queue manager %s %s (storage %s, poll %ss, grace %ss, report=%s)",
            __version__, self.cfg.queue_manager.name, self.service.description, self.cfg.storage.path,
            self.cfg.health.poll_interval, self.cfg.health.grace_period, self.cfg.health.report.value,
        )
        for line in config_mod.effective_lines(self.cfg):
            if line:
                log.debug("config: %s", line)
        self._publish(None, None)
        if self.termination is not None:
            self.termination.check(within=2.0)  # warm pool or going away: known before anything starts
            self.termination.start()
        try:
            while not self._stop_requested:
                started = self.clock.monotonic()
                try:  # nothing a cycle raises ends supervision (contract §24)
                    if self._reload_requested:
                        self._reload_requested = False
                        self.reload()
                    self.run_cycle()
                    due = next_due(started, self.cfg.health.poll_interval, self.notifier.watchdog_interval,
                                   self.machine.next_deadline(self.clock.monotonic()))
                    self._wait(max(0.0, due - self.clock.monotonic()))
                except Exception as exc:
                    self.cycle_guard.failed(exc)
                    wait_for_wake(self._wake_r, None, self.cfg.health.poll_interval)  # never a tight loop
        finally:
            code = self.shutdown()
        return code

    def run_cycle(self) -> Verdict:
        started = self.clock.monotonic()
        obs = self.observe()
        verdict = self.machine.step(obs)
        for action in verdict.actions:
            try:  # one effect that fails neither loses the others nor leaves the machine waiting for it
                self.execute(action)
            except Exception as exc:
                self.cycle_guard.failed(exc)
                self.machine.not_begun(action.kind)
        if verdict.state != self._last_state:
            old, self._last_state = self._last_state, verdict.state
            role = _ROLES.get(obs.qmgr, "none") if obs.qmgr else "none"
            for listener in self.state_listeners:
                listener(verdict.state, old or State.WAITING_FOR_STORAGE, verdict.line, role)
        if verdict.key != self._last_key:
            calm = verdict.healthy or verdict.state in (State.STARTING, State.PREPARING)
            log.log(logging.INFO if calm else logging.WARNING, "%s: %s", self.cfg.queue_manager.name, verdict.line)
            self._last_key = verdict.key
        self.cycles += 1
        self._last_obs = obs
        took = self.clock.monotonic() - started
        self.telemetry.cycle(took)
        log.debug("cycle %d done in %.3fs: %s", self.cycles, took, verdict.state.value)
        self._publish(obs, verdict)
        self.notifier.watchdog()  # only here: a cycle that never completes stops the pings
        return verdict

    def _wait(self, timeout: float) -> None:
        watching = self.machine.last_status in (QmStatus.RUNNING, QmStatus.RUNNING_AS_STANDBY)
        exited = wait_for_wake(self._wake_r, self.watch if watching else None, timeout)
        if exited is not None:
            log.warning("queue manager %s: execution controller amqzxma0 (pid %s) exited; checking now",
                        self.cfg.queue_manager.name, exited)
            self.diagnostics.collect(f"the exit of amqzxma0 (pid {exited})")

    # -------------------------------------------------------------- observe
    def observe(self) -> Observation:
        cfg = self.cfg
        now = self.clock.monotonic()
        mount = check_mount(cfg.storage.path, cfg.storage.fstypes, self.mountinfo)
        storage_ok, storage_detail = mount.ok, mount.detail
        if mount.ok:
            self.pause_watch.refresh()  # in the background; the last value read holds meanwhile
            probe = self.prober.probe(cfg.storage.probe_timeout)
            self.state_dir.update(probe.state_dir_ok, probe.state_dir_detail)
            if probe.seconds is not None:
                self.telemetry.probe(probe.seconds)
            storage_ok = probe.ok
            storage_detail = mount.detail if probe.ok else probe.detail
        stage, result = self.worker.take()
        if self.jobs.prepared and not self.diagnostics.started:
            self.diagnostics.start()
        if result is not None and result.outcome in (JobOutcome.FAILED, JobOutcome.TIMED_OUT):
            self.diagnostics.collect(f"a failed start ({result.detail})")
        qmgr: Optional[QmStatus] = None
        qmgr_detail = ""
        if storage_ok and self.jobs.prepared:
            reading = self.control.dspmq()
            qmgr, qmgr_detail = reading.status, reading.error
        elif not storage_ok:
            qmgr_detail = "not checked while storage is bad"
        else:
            qmgr_detail = "not prepared yet"
        listener: Optional[bool] = None
        port = cfg.queue_manager.listener_port
        if qmgr == QmStatus.RUNNING and port > 0:
            listener = self.listener.probe()
        pause = self.paused
        return Observation(
            now=now,
            storage_ok=storage_ok,
            storage_detail=storage_detail,
            qmgr=qmgr,
            qmgr_detail=qmgr_detail,
            listener_ok=listener,
            job_stage=stage,
            job_result=result,
            going_away=self.going_away is not None,
            paused=pause is not None,
            pause_ends=None if pause is None else pause.until - self.clock.wall() + now,
            warm=self.termination is not None and self.termination.warm,
        )

    @property
    def paused(self) -> Optional[Pause]:
        pause = self.pause_watch.current
        return pause if pause is not None and pause.active(self.clock.wall()) else None

    @property
    def going_away(self) -> Optional[str]:
        return self.termination.reason if self.termination is not None else None

    # -------------------------------------------------------------- actions
    def execute(self, action: Action) -> None:
        name = self.cfg.queue_manager.name
        jobs = {ActionKind.BRING_UP: ("bring-up", self.jobs.bring_up, "bringing it up ({})"),
                ActionKind.APPLY_MQSC: ("mqsc", self.jobs.apply_mqsc, "{}; applying MQSC"),
                ActionKind.END_FOR_TERMINATION: ("terminate", self.jobs.terminate, "{}: ending it cleanly")}
        if action.kind in jobs:
            job, body, said = jobs[action.kind]
            log.info("queue manager %s: %s", name, said.format(action.reason))
            if not self.worker.submit(job, body):
                log.info("a job is still running: %s waits for it (%s)", job, action.reason)
                self.machine.not_begun(action.kind)
        elif action.kind == ActionKind.REPORT_UNHEALTHY:
            episode = self.machine.episode
            self.reporter.report(action.reason, lambda: self.machine.still_bad(episode))
            self.diagnostics.collect("the Unhealthy decision")
        elif action.kind == ActionKind.COMPLETE_TERMINATION:
            log.warning("queue manager %s: %s", name, action.reason)
            if self.hooks is not None:
                threading.Thread(target=self.hooks.complete_termination, name="termination-hook", daemon=True).start()
        elif action.kind in (ActionKind.MQ_READY, ActionKind.WARM_READY) and self.hooks is not None:
            self.hooks.complete_launch(warm=action.kind == ActionKind.WARM_READY)

    def _role(self) -> Role:
        return role_of(self.machine.last_status, self.cfg.queue_manager.multi_instance)

    # ------------------------------------------------------------- snapshot
    def _publish(self, obs: Optional[Observation], verdict: Optional[Verdict]) -> None:
        cfg, clock = self.cfg, self.clock
        snap = compose(self.machine, obs, verdict, Outside(
            cfg.queue_manager.name, cfg.storage.path, cfg.queue_manager.listener_port,
            cfg.queue_manager.multi_instance, cfg.storage.mount_timeout, cfg.health.report.value, clock.wall(),
            clock.monotonic(), self.started, self.paused, self.going_away is not None, self.aws_errors.current(),
            self.reporter.reported, self.reporter.preflight_result if self.autoscaling else "report = log",
            self.watch.pid, self.cycles, self.state_dir.ok, self.state_dir.detail,
            [{"time": e.time, "id": e.id, "text": e.text, "source": e.source} for e in self.diagnostics.recent()]))
        self.notifier.status(snap.summary)
        with self._snapshot_lock:
            self._snapshot = snap

    # --------------------------------------------------------------- reload
    def reload(self) -> None:
        """SIGHUP: re-read the config; apply what can change live, keep the rest."""
        self.notifier.reloading()
        try:
            self._reload()
        finally:
            snap = self.snapshot()
            self.notifier.ready(snap.summary if snap else "reloaded")

    def _reload(self) -> None:
        try:
            new = config_mod.load(self.config_path)
        except config_mod.ConfigError as exc:
            log.error("reload rejected, keeping the running configuration:\n%s", exc)
            return
        self.cfg, warnings = reloaded(self.cfg, new, can_report=self.autoscaling is not None)
        for warning in warnings:
            log.warning("%s", warning)
        self.machine.reconfigure(settings_from(self.cfg))
        self.control.command_timeout = new.health.command_timeout
        self.reporter.mode = self.cfg.health.report
        self.reporter.respect_grace_period = new.health.respect_asg_grace_period
        logging.getLogger().setLevel(new.logging.level.upper())
        log.info("configuration reloaded ([health] and logging.level applied)")

    # ------------------------------------------------------------- shutdown
    def shutdown(self) -> int:
        self.machine.stop()
        self.notifier.stopping(f"stopping supervision of queue manager {self.cfg.queue_manager.name}")
        self._publish(self._last_obs, None)
        log.info("stopping supervision of %s", self.cfg.queue_manager.name)
        mode = self.cfg.queue_manager.stop_on_exit
        auto = mode == StopOnExit.AUTO
        if auto and self.going_away is None and self.termination is not None:
            self.termination.check(within=SHUTDOWN_IMDS_DEADLINE)  # one last, short look at IMDS
        kind = self.termination.kind if self.termination is not None else None
        end, why = should_end_qmgr(
            mode, host_stopping=auto and kind is None and host_is_stopping(self.runner),
            terminating=kind == TERMINATING, spot_interruption=kind == SPOT,
        )
        plan = exit_plan(end, why, self.machine.termination_begun, self.worker.busy, self.jobs.prepared,
                         self.cfg.queue_manager.name)
        if plan.job == JobAtExit.FINISH_TERMINATION:
            drain = self.cfg.queue_manager.stop_timeout + 70
            if not self.worker.join(drain):
                log.warning("the termination job is still running after %.0fs", drain)
        elif plan.job == JobAtExit.CANCEL:
            killed = self.runner.cancel_running()
            log.info("cancelling the running job before ending the queue manager (%d command(s) killed)", killed)
            self.worker.join(JOB_DRAIN_TIMEOUT)
            self.runner.resume()
        elif not self.worker.join(JOB_DRAIN_TIMEOUT):
            log.warning("a job is still running after %.0fs; leaving it (the queue manager stays as it is)",
                        JOB_DRAIN_TIMEOUT)
        self.stop_event.set()
        log.info("%s", plan.say)
        if plan.end_qmgr:
            self.lifecycle.end_after_exit(self._role(), self.cfg.queue_manager.stop_timeout)
        self.reporter.join(1.0)
        self.watch.close()
        log.info("mqguard stopped")
        return 0
