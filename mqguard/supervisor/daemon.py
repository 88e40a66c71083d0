"""The daemon: observe, ask the state machine, carry out its actions, publish, wait.

It decides nothing: the rules live in ``machine.py`` (and ``judge.py``), the parts are
built by ``cli/run.py``, observing, acting and shutting down live in ``observer.py``,
``effects.py`` and ``shutdown.py``. Signal handlers only set flags; the loop wakes on
a self-pipe, on the amqzxma0 pidfd (crash detection within milliseconds), on a
finished job, or when the next poll or a machine deadline is due.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace
from types import FrameType
from typing import Callable, List, Optional, Tuple

from mqguard import __version__
from mqguard import config as config_mod
from mqguard.base.clock import Clock
from mqguard.mq.service import Role, role_of
from mqguard.mq.status import QmStatus
from mqguard.supervisor import effects, observer
from mqguard.supervisor.cycleguard import CycleGuard, next_due
from mqguard.supervisor.evidence import Evidence, Marks
from mqguard.supervisor.machine import Action, Machine, Observation, State, Verdict
from mqguard.supervisor.model import OperatorAsk
from mqguard.supervisor.parts import Parts
from mqguard.supervisor.publish import Facts, News, compose
from mqguard.supervisor.reload import reloaded, settings_from
from mqguard.supervisor.shutdown import shut_down
from mqguard.supervisor.snapshot import Snapshot

log = logging.getLogger(__name__)

# MQGUARD_ROLE, else "none"
_HOOK_ROLES = {QmStatus.RUNNING: "active", QmStatus.RUNNING_AS_STANDBY: "standby", QmStatus.REPLICA: "replica"}
StateListener = Callable[[State, State, str, str], None]  # (new, old, reason, role)


class _Pending:
    """An operator's ask waiting for the step that answers it."""

    def __init__(self, ask: OperatorAsk) -> None:
        self.ask = ask
        self.answer: Tuple[bool, str] = (False, "refused: not decided")
        self.answered = threading.Event()

    def tell(self, verdict: Optional[Verdict]) -> None:
        if verdict is not None and verdict.answer is not None:
            self.answer = verdict.answer
        else:
            self.answer = (False, "refused: the step that was to decide it failed (see the log)")
        self.answered.set()


class Daemon:
    def __init__(self, parts: Parts, cfg: config_mod.Config, machine: Machine, clock: Clock) -> None:
        self.parts = parts
        self.machine = machine
        self.clock = clock
        self.cfg = cfg  # replaced by a reload (the parts hold no configuration)
        self.state_listeners: List[StateListener] = []
        self.reload_listeners: List[Callable[[config_mod.Config], None]] = []  # edges that read [health] too
        self.cycles = 0
        self.started = clock.monotonic()
        qm = cfg.queue_manager  # restart-only: fixed for the life of the process
        self.facts = Facts(qmgr=qm.name, storage_path=cfg.storage.path, listener_port=qm.listener_port,
                           multi_instance=qm.multi_instance, mount_timeout=cfg.storage.mount_timeout,
                           started=self.started, native_ha=qm.native_ha)
        self.cycle_guard = CycleGuard(parts.sense.telemetry.cycle_error, clock.monotonic)
        self._stop_requested = False
        self._reload_requested = False
        self._last: tuple[tuple[object, ...], Optional[State], Optional[Observation]] = ((), None, None)
        self._snapshot_lock = threading.Lock()
        self._snapshot: Optional[Snapshot] = None
        self.evidence = Evidence()  # which history events each cycle produced
        self._ask: Optional[_Pending] = None  # an operator's drill or switchover, for the next cycle
        self._ask_lock = threading.Lock()

    # ----------------------------------------------------------- plumbing
    def wake(self) -> None:
        self.parts.loop.wakeup.wake()

    def request_stop(self) -> None:
        self._stop_requested = True
        self.wake()

    def _on_stop_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self._stop_requested = True

    def _on_hup(self, signum: int, frame: Optional[FrameType]) -> None:
        self._reload_requested = True

    def install_signal_handlers(self) -> None:
        self.parts.loop.wakeup.wake_on_signals()
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def snapshot(self) -> Optional[Snapshot]:
        with self._snapshot_lock:
            return self._snapshot

    def role(self) -> Role:
        return role_of(self.machine.last_status, self.cfg.queue_manager.multi_instance)

    # ---------------------------------------------------------- main loop
    def run(self) -> int:
        p, cfg = self.parts, self.cfg
        log.info("mqguard %s supervising queue manager %s %s (storage %s, poll %ss, grace %ss, report=%s)",
                 __version__, cfg.queue_manager.name, p.loop.service.description, cfg.storage.path,
                 cfg.health.poll_interval, cfg.health.grace_period, cfg.health.report.value)
        for line in config_mod.effective_lines(cfg):
            if line:
                log.debug("config: %s", line)
        p.act.history.record("started", f"mqguard {__version__}, {p.loop.service.description}")
        self._publish(None, None)
        if p.sense.termination is not None:
            p.sense.termination.check(within=2.0)  # warm pool or going away: known before anything starts
            p.sense.termination.start()
        try:
            while not self._stop_requested:
                started = self.clock.monotonic()
                try:  # nothing a cycle raises ends supervision (cycleguard.py)
                    if self._reload_requested:
                        self._reload_requested = False
                        self.reload()
                    self.run_cycle()
                    due = next_due(started, self.cfg.health.poll_interval, p.loop.notifier.watchdog_interval,
                                   self.machine.next_deadline(self.clock.monotonic()))
                    self._wait(max(0.0, due - self.clock.monotonic()))
                except Exception as exc:
                    self.cycle_guard.failed(exc)
                    p.loop.wakeup.wait(None, self.cfg.health.poll_interval)  # never a tight loop
        finally:
            code = self.shutdown()
        return code

    def run_cycle(self) -> Verdict:
        started = self.clock.monotonic()
        obs = self.observe()
        pending = self._take_ask()  # after observing: an observation that raises leaves the ask for the next cycle
        if pending is not None:
            obs = replace(obs, ask=pending.ask)
        before = self._marks()
        try:
            verdict = self.machine.step(obs)
        except BaseException:
            if pending is not None:  # whatever happens, the operator waiting gets an answer
                pending.tell(None)
            raise
        if pending is not None:
            pending.tell(verdict)
        p = self.parts
        for event, detail in self.evidence.cycle(obs, verdict, before, self._marks(), p.act.reporter.dry_runs,
                                                 p.sense.termination.kind if p.sense.termination else None):
            p.act.history.record(event, detail)
        for event, detail, moment in self.evidence.backdated:  # said when it happened, not when it was seen
            p.act.history.record(event, detail, at=self.clock.wall() - (self.clock.monotonic() - moment))
        self.evidence.backdated.clear()
        for action in verdict.actions:
            try:  # one effect that fails neither loses the others nor leaves the machine waiting for it
                self.execute(action)
            except Exception as exc:
                self.cycle_guard.failed(exc)
                self.machine.not_begun(action.kind)
        last_key, last_state, _ = self._last
        self._last = (verdict.key, verdict.state, obs)  # before the listeners: a transition is told once
        if verdict.key != last_key:
            calm = verdict.healthy or verdict.state in (State.STARTING, State.PREPARING)
            log.log(logging.INFO if calm else logging.WARNING, "%s: %s", self.cfg.queue_manager.name, verdict.line)
        if verdict.state != last_state:
            role = _HOOK_ROLES.get(obs.qmgr, "none") if obs.qmgr else "none"
            for listener in self.state_listeners:
                try:  # one listener that raises neither silences the others nor skips the rest of the cycle
                    listener(verdict.state, last_state or State.WAITING_FOR_STORAGE, verdict.line, role)
                except Exception as exc:
                    self.cycle_guard.failed(exc)
        self.cycles += 1
        took = self.clock.monotonic() - started
        self.parts.sense.telemetry.cycle(took)
        log.debug("cycle %d done in %.3fs: %s", self.cycles, took, verdict.state.value)
        self._publish(obs, verdict)
        self.parts.loop.notifier.watchdog()  # only here: a cycle that never completes stops the pings
        return verdict

    def _marks(self) -> Marks:
        m = self.machine
        return Marks(m.episode, m.bad_since is not None, m.restarts_total)

    # ------------------------------------------------------- operators' asks
    def ask(self, ask: OperatorAsk, timeout: float) -> Tuple[bool, str]:
        """On a control-request thread: hand a drill or switchover to the loop and wait (at most ``timeout``) for
        the machine's answer. One ask at a time; the loop is woken for it."""
        pending = _Pending(ask)
        with self._ask_lock:
            if self._ask is not None:
                return False, f"refused: another request ({self._ask.ask.what.value}) is being decided; try again"
            self._ask = pending
        self.wake()
        if pending.answered.wait(timeout):
            return pending.answer
        with self._ask_lock:
            if self._ask is pending:  # never taken: the loop is stuck (/healthz says so)
                self._ask = None
                return False, f"refused: mqguard's loop did not take the request within {timeout:.0f}s"
        pending.answered.wait(5.0)  # taken after its observation: the step (pure, milliseconds) answers it
        return pending.answer

    def _take_ask(self) -> Optional[_Pending]:
        with self._ask_lock:
            pending, self._ask = self._ask, None
        return pending

    def observe(self) -> Observation:
        return observer.observe(self.parts.sense, self.cfg, self.machine.prepared)

    def execute(self, action: Action) -> None:
        effects.execute(self.parts.act, self.cfg, self.machine, action, self.role(),
                        observer.going_away(self.parts.sense) or "")

    def _wait(self, timeout: float) -> None:
        p = self.parts
        watching = self.machine.last_status in (QmStatus.RUNNING, QmStatus.RUNNING_AS_STANDBY)
        exited = p.loop.wakeup.wait(p.loop.watch if watching else None, timeout)
        if exited is not None:
            log.warning("queue manager %s: execution controller amqzxma0 (pid %s) exited; checking now",
                        self.cfg.queue_manager.name, exited)
            p.act.diagnostics.collect(f"the exit of amqzxma0 (pid {exited})")

    # ------------------------------------------------------------- snapshot
    def _publish(self, obs: Optional[Observation], verdict: Optional[Verdict]) -> None:
        p, cfg, clock = self.parts, self.cfg, self.clock
        snap = compose(self.machine, obs, verdict, self.facts, News(
            wall=clock.wall(), monotonic=clock.monotonic(), report_mode=cfg.health.report.value,
            pause=observer.pause_in_force(p.sense), going_away=observer.going_away(p.sense) is not None,
            aws_error=p.loop.aws_errors.current(), reported=p.act.reporter.reported,
            report_check=p.act.reporter.preflight_result if p.loop.autoscaling else "report = log",
            controller_pid=p.loop.watch.pid, cycles=self.cycles, state_dir_ok=p.sense.state_dir.ok,
            state_dir_detail=p.sense.state_dir.detail,
            mq_errors=[{"time": e.time, "id": e.id, "text": e.text, "source": e.source}
                       for e in p.act.diagnostics.recent()]))
        p.loop.notifier.status(snap.summary)
        with self._snapshot_lock:
            self._snapshot = snap
        p.loop.hosts.offer(snap.state, snap.qmgr_status, snap.paused.until if snap.paused else None, snap.storage_ok,
                      snap.storage_detail, cfg.health.poll_interval)

    # --------------------------------------------------------------- reload
    def reload(self) -> None:
        """SIGHUP: re-read the config; apply what can change live ([health], logging.level), keep the rest."""
        p = self.parts
        p.loop.notifier.reloading()
        try:
            new = config_mod.load(p.loop.config_path)
        except config_mod.ConfigError as exc:
            log.error("reload rejected, keeping the running configuration:\n%s", exc)
        else:
            self.cfg, warnings = reloaded(self.cfg, new, can_report=p.loop.autoscaling is not None)
            for warning in warnings:
                log.warning("%s", warning)
            self.machine.reconfigure(settings_from(self.cfg))
            for part in p.loop.health_readers:  # every part that reads [health], each told the same section
                part.reconfigure(self.cfg.health)
            for listener in self.reload_listeners:
                listener(self.cfg)
            logging.getLogger().setLevel(new.logging.level.upper())
            log.info("configuration reloaded ([health] and logging.level applied)")
        finally:
            snap = self.snapshot()
            p.loop.notifier.ready(snap.summary if snap else "reloaded")

    # ------------------------------------------------------------- shutdown
    def shutdown(self) -> int:
        self.machine.stop()
        name = self.cfg.queue_manager.name
        self.parts.loop.notifier.stopping(f"stopping supervision of queue manager {name}")
        self._publish(self._last[2], None)
        log.info("stopping supervision of %s", name)
        return shut_down(self.parts, self.cfg, self.machine, self.role())
