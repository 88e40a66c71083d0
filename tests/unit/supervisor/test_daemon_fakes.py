"""The daemon's loop with small fakes for every part: no FUSE, no simulator, no threads of MQ, a clock that moves
only when told. What the loop does with what it observes (jobs submitted, reports, reloads, drills) is checked in
milliseconds here; the same behaviour against real peers is in tests/e2e/test_daemon_inprocess.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from mqguard import config as config_mod
from mqguard.aws.errors import AwsErrors
from mqguard.base.notify import Notifier
from mqguard.base.telemetry import Telemetry
from mqguard.config import HealthConfig
from mqguard.efs.statedir import StateDirStatus
from mqguard.efs.storage import ProbeReading
from mqguard.mq.control import StatusReading
from mqguard.mq.status import QmStatus
from mqguard.supervisor.daemon import Daemon
from mqguard.supervisor.machine import Machine
from mqguard.supervisor.model import DRILL_SAYS, Ask, Drill, JobOutcome, JobResult, JobStage, OperatorAsk, State
from mqguard.supervisor.parts import Effectors, LoopParts, Parts, Sensors
from mqguard.supervisor.reload import settings_from
from tests.fakes import FakeClock

STORAGE = "/MQHA"


class FakeProber:
    def __init__(self) -> None:
        self.ok = True

    def probe(self, timeout: float) -> ProbeReading:
        return ProbeReading(self.ok, 0.001, "ok" if self.ok else "probe timed out", True, "")


class FakePause:
    current = None

    def refresh(self) -> None:
        pass


class FakeWorker:
    """Jobs are recorded, not run: the test decides when one finishes and how."""

    def __init__(self) -> None:
        self.submitted: List[str] = []
        self.stage: Optional[JobStage] = None
        self.result: Optional[JobResult] = None

    def submit(self, name: str, job: Callable[..., JobResult]) -> bool:
        if self.stage is not None:
            return False
        self.submitted.append(name)
        self.stage = JobStage.PREPARING
        return True

    def finish(self, result: JobResult) -> None:
        self.stage, self.result = None, result

    def take(self) -> Tuple[Optional[JobStage], Optional[JobResult]]:
        result, self.result = self.result, None
        return self.stage, result

    @property
    def busy(self) -> bool:
        return self.stage is not None

    def join(self, timeout: float) -> bool:
        return True


class FakeJobs:
    def bring_up(self, stage: Any) -> JobResult:
        raise AssertionError("the fake worker never runs a job body")

    apply_mqsc = terminate = bring_up


class FakeControl:
    def __init__(self) -> None:
        self.status: Optional[QmStatus] = None
        self.command_timeout = 0.0

    def dspmq(self, instances: bool = False) -> StatusReading:
        return StatusReading(self.status)

    def reconfigure(self, health: HealthConfig) -> None:
        self.command_timeout = health.command_timeout


class FakeDiagnostics:
    started = False

    def __init__(self) -> None:
        self.collected: List[str] = []

    def start(self) -> None:
        self.started = True

    def collect(self, reason: str) -> bool:
        self.collected.append(reason)
        return False

    def recent(self) -> List[Any]:
        return []


class FakeListener:
    def probe(self) -> bool:
        return True


class FakePeers:
    def tick(self, storage_ok: bool) -> None:
        pass

    def verdict(self) -> Tuple[str, str]:
        return "", ""


class FakeReporter:
    reported = False
    preflight_result = ""
    dry_runs = 0

    def __init__(self) -> None:
        self.reports: List[str] = []
        self.respect_grace_period = True

    def report(self, reason: str, still_bad: Callable[[], bool] = lambda: True) -> None:
        self.reports.append(reason)

    def reconfigure(self, health: HealthConfig) -> None:
        self.respect_grace_period = health.respect_asg_grace_period

    def join(self, timeout: float) -> None:
        pass


class FakeHistory:
    def __init__(self) -> None:
        self.events: List[Tuple[str, str]] = []

    def record(self, event: str, detail: str, at: Optional[float] = None) -> None:
        self.events.append((event, detail))

    def flush(self, timeout: float) -> bool:
        return True


class FakeWatch:
    pid = None

    def close(self) -> None:
        pass


class FakeWakeup:
    def wake(self) -> None:
        pass

    def wait(self, watch: Any, timeout: float) -> None:
        return None


class FakeHosts:
    def __init__(self) -> None:
        self.offers: List[str] = []

    def offer(self, state: str, *rest: Any) -> None:
        self.offers.append(state)

    def flush(self, timeout: float) -> bool:
        return True


class FakeService:
    description = "as mqguard's child (fake)"


class Rig:
    """A daemon over fakes, and the fakes, for one test."""

    def __init__(self, tmp: Path, **health: str) -> None:
        self.conf = tmp / "mqguard.conf"
        self.health = {"poll_interval": "5s", "grace_period": "60s", "restart_attempts": "2", **health}
        self.write()
        mountinfo = tmp / "mountinfo"
        mountinfo.write_text(f"40 27 0:45 / {STORAGE} rw - nfs4 fs-0123.efs.eu-west-1.amazonaws.com:/ rw\n")
        cfg = config_mod.load(str(self.conf))
        self.clock = FakeClock()
        self.prober, self.worker, self.jobs = FakeProber(), FakeWorker(), FakeJobs()
        self.control, self.diagnostics, self.reporter = FakeControl(), FakeDiagnostics(), FakeReporter()
        self.history, self.hosts = FakeHistory(), FakeHosts()
        # the fakes stand in for the real parts (duck-typed: the loop calls only what they define); lifecycle
        # and runner are used only by the end of supervision, which these tests do not reach
        sense = Sensors(clock=self.clock, mountinfo=str(mountinfo), prober=self.prober,
                        state_dir=StateDirStatus(), pause_watch=FakePause(), worker=self.worker,
                        jobs=self.jobs, diagnostics=self.diagnostics, control=self.control,
                        listener=FakeListener(), peers=FakePeers(), termination=None, telemetry=Telemetry())
        act = Effectors(worker=self.worker, jobs=self.jobs, lifecycle=None, control=self.control,
                        runner=None, diagnostics=self.diagnostics, reporter=self.reporter, hooks=None,
                        signal=None, history=self.history, owners=frozenset())
        loop = LoopParts(config_path=str(self.conf), notifier=Notifier({}), wakeup=FakeWakeup(),
                         watch=FakeWatch(), stop_event=threading.Event(), aws_errors=AwsErrors(),
                         autoscaling=None, service=FakeService(), hosts=self.hosts,
                         health_readers=(self.control, self.reporter))
        self.d = Daemon(Parts(sense=sense, act=act, loop=loop), cfg,
                        Machine(settings_from(cfg), started_at=self.clock.monotonic()), self.clock)  # type: ignore[arg-type]

    def write(self) -> None:
        self.conf.write_text(
            "[queue_manager]\nname = QM1\nrun_as =\nlistener_port = 1414\n"
            f"[storage]\npath = {STORAGE}\nfstypes = nfs4\n"
            "[health]\n" + "".join(f"{k} = {v}\n" for k, v in self.health.items()) + "report = log\n"
            "[metrics]\nlisten = off\n")

    def cycle(self, after: float = 0.0) -> State:
        self.clock.advance(after)
        return self.d.run_cycle().state


def up(rig: Rig) -> None:
    """The first bring-up: submitted, then finished with MQ running."""
    assert rig.cycle() == State.PREPARING and rig.worker.submitted == ["bring-up"]
    finish_bring_up(rig)


def finish_bring_up(rig: Rig) -> None:
    rig.control.status = QmStatus.RUNNING
    rig.worker.finish(JobResult(JobOutcome.UP, "started", prepared=True))
    assert rig.cycle(1) == State.RUNNING


def test_a_crash_is_restarted_locally_through_the_worker(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    up(rig)
    rig.control.status = QmStatus.ENDED_UNEXPECTEDLY
    state = rig.cycle(1)
    assert rig.worker.submitted == ["bring-up", "bring-up"], "a local restart"
    assert state in (State.RECOVERING, State.STARTING), state
    rig.control.status = QmStatus.RUNNING
    rig.worker.finish(JobResult(JobOutcome.UP, "restarted"))
    assert rig.cycle(1) == State.RUNNING
    assert not rig.reporter.reports
    events = [e for e, _ in rig.history.events]
    assert events[events.index("crash"):] == ["crash", "bad", "restart", "running", "good"], events


def test_a_queue_manager_that_stays_down_past_the_grace_period_is_reported(tmp_path: Path) -> None:
    rig = Rig(tmp_path, restart_attempts="0", grace_period="30s")
    up(rig)
    rig.control.status = QmStatus.ENDED_UNEXPECTEDLY
    rig.cycle(1)
    assert not rig.reporter.reports, "within the grace period"
    for _ in range(8):  # bounded: 40 s of fake time
        rig.cycle(5)
        if rig.reporter.reports:
            break
    assert len(rig.reporter.reports) == 1 and "ended_unexpectedly" in rig.reporter.reports[0], rig.reporter.reports
    assert rig.d.machine.state == State.FAILED
    rig.cycle(5)
    assert len(rig.reporter.reports) == 1, "reported once per episode"


def test_sighup_hands_the_new_health_section_to_every_reader(tmp_path: Path) -> None:
    rig = Rig(tmp_path, command_timeout="3s")
    up(rig)
    rig.health.update(command_timeout="9s", respect_asg_grace_period="false", grace_period="2m")
    rig.write()
    rig.d.reload()
    assert rig.control.command_timeout == 9.0 and rig.reporter.respect_grace_period is False
    assert rig.d.machine.settings.grace_period == 120.0
    rig.conf.write_text("this is not INI\n")
    rig.d.reload()  # refused: the running configuration stays
    assert rig.d.cfg.health.grace_period == 120.0 and rig.cycle(1) == State.RUNNING


def ask_in_next_cycle(rig: Rig, ask: OperatorAsk) -> Tuple[bool, str]:
    """An operator's ask from another thread, answered by the next cycle (as the control socket does)."""
    answers: List[Tuple[bool, str]] = []
    t = threading.Thread(target=lambda: answers.append(rig.d.ask(ask, 10)))
    t.start()
    for _ in range(200):  # bounded: the ask is handed over within 2 s
        if rig.d._ask is not None:
            break
        t.join(0.01)
    rig.cycle(1)
    t.join(10)
    assert answers, "answered"
    return answers[0]


def test_drills_enter_through_the_machine_refused_unless_healthy_and_rate_limited(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ok, said = ask_in_next_cycle(rig, OperatorAsk(Ask.DRILL, who="op", drill=Drill.CRASH))
    assert not ok and "healthy queue manager" in said  # this first cycle submitted the bring-up
    finish_bring_up(rig)
    ok, said = ask_in_next_cycle(rig, OperatorAsk(Ask.DRILL, who="op", drill=Drill.UNHEALTHY))
    assert ok and said == DRILL_SAYS[Drill.UNHEALTHY]
    assert rig.reporter.reports == ["drill: an operator asked for an Unhealthy report of queue manager QM1"]
    assert ("drill", "unhealthy, asked by op") in rig.history.events
    ok, said = ask_in_next_cycle(rig, OperatorAsk(Ask.DRILL, who="op2", drill=Drill.UNHEALTHY))
    assert not ok and "drill_interval" in said and len(rig.reporter.reports) == 1


def test_a_switchover_is_refused_while_a_job_runs_and_otherwise_submitted(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    up(rig)
    rig.worker.stage = JobStage.CONFIGURING
    ok, said = ask_in_next_cycle(rig, OperatorAsk(Ask.SWITCHOVER, who="op", standby=("hostB",)))
    assert not ok and "busy with another job (configuring)" in said
    rig.worker.stage = None
    ok, said = ask_in_next_cycle(rig, OperatorAsk(Ask.SWITCHOVER, who="op", standby=("hostB",)))
    assert ok and rig.worker.submitted[-1] == "switchover"
    assert ("switchover", "asked by op") in rig.history.events


def test_bad_storage_is_not_asked_about_mq_and_holds_within_the_mount_timeout(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    up(rig)
    rig.prober.ok = False
    state = rig.cycle(1)
    snap = rig.d.snapshot()
    assert snap is not None and not snap.storage_ok and snap.qmgr_status is None
    assert state != State.RUNNING and not rig.reporter.reports
    assert rig.hosts.offers[-1] == state.value, "this host's record follows every publication"


def test_a_job_that_cannot_start_is_retried_not_lost(tmp_path: Path) -> None:
    """A busy worker refuses a job: the machine is told it has not begun (and asks again)."""
    rig = Rig(tmp_path)
    rig.worker.stage = JobStage.PREPARING  # something else is running
    rig.cycle()
    assert rig.worker.submitted == []
    rig.worker.stage = None
    rig.cycle(5)
    assert rig.worker.submitted == ["bring-up"]


def test_every_action_the_machine_can_take_has_its_effect() -> None:
    from mqguard.supervisor.effects import EFFECTS
    from mqguard.supervisor.model import ActionKind

    assert set(EFFECTS) == set(ActionKind)


def test_an_ask_survives_a_cycle_whose_observation_raises(tmp_path: Path) -> None:
    """The ask is taken after observing: a cycle that fails before its step leaves it for the next one (taken
    before, it was lost and the operator waited out twice the answer bound)."""
    rig = Rig(tmp_path)
    up(rig)
    answers: List[Tuple[bool, str]] = []
    t = threading.Thread(target=lambda: answers.append(
        rig.d.ask(OperatorAsk(Ask.DRILL, who="op", drill=Drill.UNHEALTHY), 10)))
    t.start()
    for _ in range(200):
        if rig.d._ask is not None:
            break
        t.join(0.01)
    broken = rig.prober.probe

    def fails(timeout: float) -> ProbeReading:
        raise OSError("a bug in one observation")

    rig.prober.probe = fails  # type: ignore[method-assign]
    try:
        rig.d.run_cycle()
    except OSError:
        pass  # the loop's cycle guard logs and counts it (cycleguard.py)
    rig.prober.probe = broken  # type: ignore[method-assign]
    assert rig.d._ask is not None, "still waiting for a step"
    rig.cycle(1)
    t.join(10)
    assert answers and answers[0][0], answers
