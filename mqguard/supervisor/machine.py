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
from dataclasses import dataclass
from typing import List, Optional

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


@dataclass(frozen=True)
class Verdict:
    """What one step concluded; the runner logs ``line`` when it changes."""

    state: State
    healthy: bool
    bad_reasons: List[str]
    actions: List[Action]
    line: str

    @property
    def key(self) -> tuple[object, ...]:
        """What makes a verdict worth logging again (not the episode's age)."""
        return (self.state, tuple(self.bad_reasons), tuple(self.actions))


@dataclass
class Machine:
    settings: Settings
    started_at: float
    state: State = State.WAITING_FOR_STORAGE
    storage_seen: bool = False  # storage was good once: bring-up may begin
    up_once: bool = False  # queue manager was healthy once
    jobs_started: int = 0
    bad_since: Optional[float] = None
    attempts: int = 0  # local start attempts in the current episode
    restarts_total: int = 0
    reported_in_episode: bool = False
    starting_since: Optional[float] = None  # first STARTING (or start job) seen
    last_job_end: Optional[float] = None
    last_status: Optional[QmStatus] = None
    healthy_as: Optional[State] = None  # RUNNING or STANDBY: the role of the last healthy observation
    mount_failure_reported: bool = False
    ready_announced: bool = False

    def step(self, obs: Observation) -> Verdict:
        s = self.settings
        actions: List[Action] = []

        # 1. Going away: never start, never report; not healthy, so load balancers drain.
        if obs.going_away:
            if obs.qmgr is not None:
                self.last_status = obs.qmgr
            return self._verdict(State.STOPPING, False, ["the instance is going away"], actions, obs)

        # 2. Waiting for the mount is progress, until mount_timeout.
        if not self.storage_seen:
            if not obs.storage_ok:
                waited = obs.now - self.started_at
                if waited >= s.mount_timeout and not self.mount_failure_reported:
                    self.mount_failure_reported = True
                    actions.append(self._report(obs, f"storage not ready after {waited:.0f}s: {obs.storage_detail}"))
                state = State.FAILED if self.reported_in_episode else State.WAITING_FOR_STORAGE
                return self._verdict(state, False, [f"storage: {obs.storage_detail}"], actions, obs)
            self.storage_seen = True

        # 3. The first bring-up (prepare + start) once storage is good.
        if self.jobs_started == 0:
            return self._verdict(State.PREPARING, False, [], [self._bring_up(obs, "start-up")], obs)

        # 4. A job that finished since the last step.
        if obs.job_result is not None:
            self.last_job_end = obs.now
            res = obs.job_result
            if res.mqsc_applied:
                self.healthy_as = State.RUNNING  # this start made it active: no takeover to handle
            if res.outcome in (JobOutcome.FAILED, JobOutcome.TIMED_OUT):
                self._open_episode(obs.now)
                if res.outcome == JobOutcome.TIMED_OUT and not self.reported_in_episode:
                    actions.append(self._report(obs, f"start exceeded start_timeout: {res.detail}"))

        # 5. Judge this observation.
        busy = obs.job_stage is not None
        status = obs.qmgr
        if status is not None:
            self.last_status = status
        active = status == QmStatus.RUNNING
        healthy_qm = counts_healthy(status, s.multi_instance)
        bad: List[str] = []
        if not obs.storage_ok:
            bad.append(f"storage: {obs.storage_detail}")
        not_yet = False
        if status == QmStatus.STARTING or (busy and not healthy_qm):
            # A start in progress is neither good nor bad, until start_timeout.
            if self.starting_since is None:
                self.starting_since = obs.now
            starting_for = obs.now - self.starting_since
            if starting_for >= s.start_timeout:
                bad.append(f"queue manager still starting after {starting_for:.0f}s")
                if not self.reported_in_episode:
                    actions.append(self._report(obs, bad[-1]))
            else:
                not_yet = True
        else:
            self.starting_since = None
            if obs.storage_ok and status is None:
                bad.append(f"queue manager: {obs.qmgr_detail or 'status unknown'}")
            elif status is not None and not healthy_qm:
                bad.append(f"queue manager {status.value}")
        if active and s.listener_probe and obs.listener_ok is False:
            bad.append("listener not accepting connections")

        # 6. Fully good: the episode (if any) ends.
        if not bad and not not_yet and healthy_qm:
            self.bad_since = None
            self.attempts = 0
            self.reported_in_episode = False
            self.up_once = True
            # Compare roles, not adjacent statuses: a takeover may pass through STARTING.
            if active and self.healthy_as == State.STANDBY:
                actions.append(Action(ActionKind.APPLY_MQSC, "this instance took over as active"))
            self.healthy_as = State.RUNNING if active else State.STANDBY
            if not self.ready_announced:
                self.ready_announced = True
                actions.append(Action(ActionKind.MQ_READY, "queue manager healthy for the first time"))
            state = State.RUNNING if active else State.STANDBY
            return self._verdict(state, True, [], actions, obs)
        if bad:
            self._open_episode(obs.now)

        # 7. Local recovery inside an episode.
        restartable = status is not None and (
            status.ended or (s.multi_instance and status == QmStatus.RUNNING_ELSEWHERE)
        )
        spaced = self.last_job_end is None or obs.now - self.last_job_end >= s.restart_spacing or self.attempts == 0
        if (
            self.bad_since is not None
            and restartable
            and obs.storage_ok
            and not busy
            and not self.reported_in_episode
            and self.attempts < s.restart_attempts
            and spaced
        ):
            self.attempts += 1
            self.restarts_total += 1
            why = f"restart attempt {self.attempts}/{s.restart_attempts} ({bad[0] if bad else status})"
            actions.append(self._bring_up(obs, why))
            busy = True

        # 8. Report once the episode has outlasted the grace period.
        if (
            self.bad_since is not None
            and bad
            and not self.reported_in_episode
            and obs.now - self.bad_since >= s.grace_period
        ):
            actions.append(self._report(obs, f"bad for {obs.now - self.bad_since:.0f}s: {'; '.join(bad)}"))

        return self._verdict(self._not_good_state(obs, busy, not_yet), False, bad, actions, obs)

    # --------------------------------------------------------------- helpers
    def _bring_up(self, obs: Observation, reason: str) -> Action:
        self.jobs_started += 1
        return Action(ActionKind.BRING_UP, reason)

    def _open_episode(self, now: float) -> None:
        if self.bad_since is None:
            self.bad_since = now
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

    def _verdict(
        self, state: State, healthy: bool, bad: List[str], actions: List[Action], obs: Observation
    ) -> Verdict:
        self.state = state
        age = "" if self.bad_since is None else f" for {obs.now - self.bad_since:.0f}s"
        why = f": {'; '.join(bad)}" if bad else ""
        acts = "".join(f"; -> {a.kind.value} ({a.reason})" for a in actions)
        return Verdict(state, healthy, bad, actions, f"{state.value}{age}{why}{acts}")

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
        future = [t for t in times if t > now]
        return min(future) if future else None

    def bad_seconds(self, now: float) -> float:
        return 0.0 if self.bad_since is None else max(0.0, now - self.bad_since)
