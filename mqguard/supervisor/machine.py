"""The supervision state machine: observations in, actions out. No I/O here.

One ``step()`` per cycle. The runner observes the world (mount, probe, dspmq,
listener, whether its worker is busy) and carries out the returned actions
(start the queue manager, report the instance). Time comes in with each
observation, so tests drive hours of behaviour without sleeping.

Vocabulary (see README "How it decides"):
- start-up: from process start until the queue manager is first seen healthy.
  Waiting for the mount (up to mount_timeout) and starting (up to
  start_timeout) are progress, not badness; exceeding either fails at once.
- bad episode: from the first bad observation to the first fully good one.
  Local restarts happen inside it (at most restart_attempts); once it has lasted
  grace_period and the current observation is bad, the instance is reported
  Unhealthy, once per episode.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Sequence, Tuple

from mqguard.configvalues import format_duration
from mqguard.mq.status import QmStatus, counts_healthy


class State(str, enum.Enum):
    """mqguard_state values. The strings are part of the contract: never rename."""

    WAITING_FOR_STORAGE = "waiting_for_storage"
    PREPARING = "preparing"
    STARTING = "starting"
    RUNNING = "running"
    STANDBY = "standby"
    RECOVERING = "recovering"
    FAILED = "failed"
    STOPPING = "stopping"


class JobStage(str, enum.Enum):
    PREPARING = "preparing"
    STARTING = "starting"
    CONFIGURING = "configuring"  # applying MQSC
    ENDING = "ending"  # ending the queue manager because the instance is going away


class JobOutcome(str, enum.Enum):
    UP = "up"  # started or adopted, active or standby
    ELSEWHERE = "elsewhere"  # an active instance runs on another host
    FAILED = "failed"
    TIMED_OUT = "timed_out"  # strmqm/crtmqm overran start_timeout


@dataclass(frozen=True)
class JobResult:
    outcome: JobOutcome
    detail: str
    mqsc_applied: bool = False  # the job started the queue manager active and applied MQSC


@dataclass(frozen=True)
class Observation:
    now: float  # monotonic seconds
    storage_ok: bool
    storage_detail: str = ""
    qmgr: Optional[QmStatus] = None  # None: not observed, or dspmq failed
    qmgr_detail: str = ""
    listener_ok: Optional[bool] = None  # None: not probed
    job_stage: Optional[JobStage] = None  # the worker's current job, if any
    job_result: Optional[JobResult] = None  # a job that finished since the last step
    going_away: bool = False  # the instance is being terminated: never start MQ


class ActionKind(str, enum.Enum):
    BRING_UP = "bring_up"  # prepare if needed, start, apply MQSC when active
    APPLY_MQSC = "apply_mqsc"  # became active by takeover
    REPORT_UNHEALTHY = "report_unhealthy"
    MQ_READY = "mq_ready"  # first healthy observation (completes the launch hook)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: str


@dataclass(frozen=True)
class Settings:
    grace_period: float
    restart_attempts: int
    mount_timeout: float
    start_timeout: float
    multi_instance: bool
    listener_probe: bool
    restart_spacing: float = 0.0  # least time between the end of one attempt and the next
    restart_limit: int = 6  # local restarts allowed in any restart_window (the restart budget)
    restart_window: float = 3600.0


@dataclass(frozen=True)
class Verdict:
    """What one step concluded; the runner logs ``line`` when it changes."""

    state: State
    healthy: bool
    bad_reasons: List[str]
    actions: List[Action]
    line: str
    notes: Tuple[str, ...] = ()  # decisions worth a log line that are not badness (e.g. budget spent)

    @property
    def key(self) -> tuple[object, ...]:
        """What makes a verdict worth logging again (not the episode's age)."""
        return (self.state, tuple(self.bad_reasons), tuple(self.actions), self.notes)


@dataclass
class _Judgement:
    """One observation judged: what is bad, and whether a start is still in progress."""

    bad: List[str]
    not_yet: bool
    active: bool
    healthy_qm: bool
    busy: bool


@dataclass
class Machine:
    settings: Settings
    started_at: float
    state: State = State.WAITING_FOR_STORAGE
    storage_seen: bool = False  # storage was good once: bring-up may begin
    up_once: bool = False  # queue manager was healthy once
    jobs_started: int = 0
    bad_since: Optional[float] = None
    episode: int = 0  # counts bad episodes; a report belongs to one
    attempts: int = 0  # local start attempts in the current episode
    restarts_total: int = 0
    restart_times: Deque[float] = field(default_factory=deque)  # when each local restart began (the budget)
    reported_in_episode: bool = False
    starting_since: Optional[float] = None  # first STARTING (or start job) seen
    last_job_end: Optional[float] = None
    last_status: Optional[QmStatus] = None
    healthy_as: Optional[State] = None  # RUNNING or STANDBY: the role of the last healthy observation
    mount_failure_reported: bool = False
    ready_announced: bool = False

    def step(self, obs: Observation) -> Verdict:
        """The rules, in order; the first that settles the verdict returns it."""
        actions: List[Action] = []
        notes: List[str] = []
        early = (self._rule_going_away(obs, actions) or self._rule_wait_for_storage(obs, actions)
                 or self._rule_first_bring_up(obs, actions))
        if early is not None:
            return early
        self._rule_job_finished(obs, actions)
        j = self._judge(obs, actions)
        if not j.bad and not j.not_yet and j.healthy_qm:
            return self._rule_fully_good(obs, j, actions)
        if j.bad:
            self._open_episode(obs.now)
        if self._rule_local_recovery(obs, j, actions, notes):
            j.busy = True
        self._rule_report_after_grace(obs, j, actions)
        state = self._not_good_state(obs, j.busy, j.not_yet)
        return self._verdict(state, False, j.bad, actions, obs, notes)

    # ------------------------------------------------------------------ rules
    def _rule_going_away(self, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
        """Going away: never start, never report; not healthy, so load balancers drain."""
        if not obs.going_away:
            return None
        if obs.qmgr is not None:
            self.last_status = obs.qmgr
        return self._verdict(State.STOPPING, False, ["the instance is going away"], actions, obs)

    def _rule_wait_for_storage(self, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
        """Waiting for the mount is progress, until mount_timeout (then reported at once)."""
        if self.storage_seen:
            return None
        if obs.storage_ok:
            self.storage_seen = True
            return None
        waited = obs.now - self.started_at
        if waited >= self.settings.mount_timeout and not self.mount_failure_reported:
            self.mount_failure_reported = True
            actions.append(self._report(obs, f"storage not ready after {waited:.0f}s: {obs.storage_detail}"))
        state = State.FAILED if self.reported_in_episode else State.WAITING_FOR_STORAGE
        return self._verdict(state, False, [f"storage: {obs.storage_detail}"], actions, obs)

    def _rule_first_bring_up(self, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
        """The first bring-up (prepare + start) once storage is good."""
        if self.jobs_started:
            return None
        actions.append(self._bring_up("start-up"))
        return self._verdict(State.PREPARING, False, [], actions, obs)

    def _rule_job_finished(self, obs: Observation, actions: List[Action]) -> None:
        """A job that finished since the last step: a failed start opens an episode."""
        res = obs.job_result
        if res is None:
            return
        self.last_job_end = obs.now
        if res.mqsc_applied:
            self.healthy_as = State.RUNNING  # this start made it active: no takeover to handle
        if res.outcome in (JobOutcome.FAILED, JobOutcome.TIMED_OUT):
            self._open_episode(obs.now)
            if res.outcome == JobOutcome.TIMED_OUT and not self.reported_in_episode:
                actions.append(self._report(obs, f"start exceeded start_timeout: {res.detail}"))

    def _judge(self, obs: Observation, actions: List[Action]) -> _Judgement:
        """What is bad about this observation; a start in progress is "not yet" until start_timeout."""
        s = self.settings
        status = obs.qmgr
        if status is not None:
            self.last_status = status
        healthy_qm = counts_healthy(status, s.multi_instance)
        j = _Judgement([], False, status == QmStatus.RUNNING, healthy_qm, obs.job_stage is not None)
        if not obs.storage_ok:
            j.bad.append(f"storage: {obs.storage_detail}")
        if status == QmStatus.STARTING or (j.busy and not healthy_qm):
            if self.starting_since is None:
                self.starting_since = obs.now
            starting_for = obs.now - self.starting_since
            if starting_for >= s.start_timeout:
                j.bad.append(f"queue manager still starting after {starting_for:.0f}s")
                if not self.reported_in_episode:
                    actions.append(self._report(obs, j.bad[-1]))
            else:
                j.not_yet = True
        else:
            self.starting_since = None
            if obs.storage_ok and status is None:
                j.bad.append(f"queue manager: {obs.qmgr_detail or 'status unknown'}")
            elif status is not None and not healthy_qm:
                j.bad.append(f"queue manager {status.value}")
        if j.active and s.listener_probe and obs.listener_ok is False:
            j.bad.append("listener not accepting connections")
        return j

    def _rule_fully_good(self, obs: Observation, j: _Judgement, actions: List[Action]) -> Verdict:
        """Fully good: the episode (if any) ends; a takeover gets its MQSC; the first time, MQ is ready."""
        self.bad_since = None
        self.attempts = 0
        self.reported_in_episode = False
        self.up_once = True
        # Compare roles, not adjacent statuses: a takeover may pass through STARTING.
        if j.active and self.healthy_as == State.STANDBY:
            actions.append(Action(ActionKind.APPLY_MQSC, "this instance took over as active"))
        self.healthy_as = State.RUNNING if j.active else State.STANDBY
        if not self.ready_announced:
            self.ready_announced = True
            actions.append(Action(ActionKind.MQ_READY, "queue manager healthy for the first time"))
        return self._verdict(self.healthy_as, True, [], actions, obs)

    def _rule_local_recovery(self, obs: Observation, j: _Judgement, actions: List[Action],
                             notes: List[str]) -> bool:
        """Start it again inside an episode: never while storage is bad or it runs elsewhere,
        at most restart_attempts per episode, spaced, and within the restart budget."""
        s = self.settings
        status = obs.qmgr
        restartable = status is not None and (
            status.ended or (s.multi_instance and status == QmStatus.RUNNING_ELSEWHERE)
        )
        spaced = self.last_job_end is None or obs.now - self.last_job_end >= s.restart_spacing or self.attempts == 0
        if not (self.bad_since is not None and restartable and obs.storage_ok and not j.busy
                and not self.reported_in_episode and self.attempts < s.restart_attempts and spaced):
            return False
        if self.budget_remaining(obs.now) <= 0:
            window = format_duration(s.restart_window)
            notes.append(f"{len(self.restart_times)} restarts in the last {window}: "
                         "not restarting here again; the instance will be reported")
            return False
        self.attempts += 1
        self.restarts_total += 1
        self.restart_times.append(obs.now)
        why = f"restart attempt {self.attempts}/{s.restart_attempts} ({j.bad[0] if j.bad else status})"
        actions.append(self._bring_up(why))
        return True

    def _rule_report_after_grace(self, obs: Observation, j: _Judgement, actions: List[Action]) -> None:
        """Report once the episode has outlasted the grace period and this observation is still bad."""
        if (self.bad_since is not None and j.bad and not self.reported_in_episode
                and obs.now - self.bad_since >= self.settings.grace_period):
            actions.append(self._report(obs, f"bad for {obs.now - self.bad_since:.0f}s: {'; '.join(j.bad)}"))

    # ----------------------------------------------------------------- budget
    def budget_remaining(self, now: float) -> int:
        """Local restarts still allowed in the current restart_window."""
        window = self.settings.restart_window
        while self.restart_times and self.restart_times[0] <= now - window:
            self.restart_times.popleft()
        return max(0, self.settings.restart_limit - len(self.restart_times))

    # --------------------------------------------------------------- helpers
    def _bring_up(self, reason: str) -> Action:
        self.jobs_started += 1
        return Action(ActionKind.BRING_UP, reason)

    def _open_episode(self, now: float) -> None:
        if self.bad_since is None:
            self.bad_since = now
            self.episode += 1
            self.attempts = 0
            self.reported_in_episode = False

    def _report(self, obs: Observation, reason: str) -> Action:
        self._open_episode(obs.now)
        self.reported_in_episode = True
        return Action(ActionKind.REPORT_UNHEALTHY, reason)

    def _not_good_state(self, obs: Observation, busy: bool, not_yet: bool) -> State:
        if self.reported_in_episode:
            return State.FAILED
        if self.bad_since is not None:
            return State.RECOVERING
        if obs.job_stage == JobStage.PREPARING:
            return State.PREPARING
        if busy or not_yet:
            return State.STARTING
        return State.RECOVERING if self.up_once else State.STARTING

    def _verdict(self, state: State, healthy: bool, bad: List[str], actions: List[Action], obs: Observation,
                 notes: Sequence[str] = ()) -> Verdict:
        self.state = state
        age = "" if self.bad_since is None else f" for {obs.now - self.bad_since:.0f}s"
        why = f": {'; '.join(bad)}" if bad else ""
        acts = "".join(f"; -> {a.kind.value} ({a.reason})" for a in actions)
        said = "".join(f"; {n}" for n in notes)
        return Verdict(state, healthy, bad, actions, f"{state.value}{age}{why}{acts}{said}", tuple(notes))

    def next_deadline(self, now: float) -> Optional[float]:
        """The next future moment a decision could change with no new event (grace, budgets)."""
        s = self.settings
        times = []
        if not self.storage_seen and not self.mount_failure_reported:
            times.append(self.started_at + s.mount_timeout)
        if self.bad_since is not None and not self.reported_in_episode:
            times.append(self.bad_since + s.grace_period)
        if self.starting_since is not None:
            times.append(self.starting_since + s.start_timeout)
        if self.bad_since is not None and self.last_job_end is not None and self.attempts < s.restart_attempts:
            times.append(self.last_job_end + s.restart_spacing)
        if self.bad_since is not None and self.restart_times and len(self.restart_times) >= s.restart_limit:
            times.append(self.restart_times[0] + s.restart_window)  # the budget frees a restart
        future = [t for t in times if t > now]
        return min(future) if future else None

    def still_bad(self, episode: int) -> bool:
        """Is bad episode ``episode`` still going on? (Asked from the reporting thread.)"""
        return self.episode == episode and self.bad_since is not None

    def bad_seconds(self, now: float) -> float:
        return 0.0 if self.bad_since is None else max(0.0, now - self.bad_since)

