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

from dataclasses import InitVar, dataclass, field, replace
from typing import List, Optional, Sequence

from mqguard.base.durations import format_duration
from mqguard.mq.status import QmStatus, counts_healthy
from mqguard.supervisor import early
from mqguard.supervisor.budget import RestartBudget
from mqguard.supervisor.judge import Judgement, Seen, judge, native_ha_role
from mqguard.supervisor.model import (
    Action,
    ActionKind,
    Drill,
    Episode,
    JobOutcome,
    JobResult,
    JobStage,
    Observation,
    Settings,
    StartUp,
    State,
    Verdict,
)
from mqguard.supervisor.timers import TIMERS

__all__ = ["Action", "ActionKind", "JobOutcome", "JobResult", "JobStage", "Machine", "Observation", "Settings",
           "State", "Verdict"]


def prepared_after(before: bool, stage: Optional[JobStage], result: Optional[JobResult]) -> bool:
    """Is the queue manager known on this host? Once a job said so, or a job is past preparing (a bring-up that
    reached its start, MQSC, an end, a switchover), it is, for the life of the process."""
    return before or stage in (JobStage.STARTING, JobStage.CONFIGURING, JobStage.ENDING, JobStage.SWITCHING) \
        or (result is not None and result.prepared)


@dataclass
class Machine:
    settings: Settings
    started_at: InitVar[float]
    state: State = State.WAITING_FOR_STORAGE
    start: StartUp = field(init=False)
    ep: Episode = field(default_factory=Episode)
    seen: Seen = field(default_factory=Seen)  # what judging remembers (judge.py)
    budget: RestartBudget = field(default_factory=RestartBudget)  # local restarts in the restart_window
    jobs_started: int = 0
    restarts_total: int = 0
    last_job_end: Optional[float] = None
    healthy_as: Optional[State] = None  # RUNNING or STANDBY: the role of the last healthy observation
    was_paused: bool = False
    deliberate_wait: bool = True  # wait deliberate_end_delay before restarting after a deliberate end
    pause_ends: Optional[float] = None  # when the pause in force expires: the loop wakes then
    termination_begun: bool = False  # the clean end (or the hook alone) for a going-away instance was asked for
    mqsc_pending: bool = False  # a takeover's MQSC apply waits for the worker, never dropped
    hold: str = ""  # a job said this host must not bring the queue manager up again (lost data, an older MQ)
    last_drill: Optional[float] = None  # when the last drill was accepted (drills are rate-limited)
    prepared: bool = False  # the queue manager is known on this host (prepared_after)

    def __post_init__(self, started_at: float) -> None:
        self.start = StartUp(began=started_at)

    # what the daemon, the snapshot and the tests read
    @property
    def bad_since(self) -> Optional[float]:
        return self.ep.since

    @property
    def episode(self) -> int:
        return self.ep.number

    @property
    def attempts(self) -> int:
        return self.ep.attempts

    @property
    def reported_in_episode(self) -> bool:
        return self.ep.reported

    @property
    def last_status(self) -> Optional[QmStatus]:
        return self.seen.last_status

    def reconfigure(self, settings: Settings) -> None:
        """A reload's new settings (what a SIGHUP may change was decided by reload.reloaded)."""
        self.settings = settings

    def not_begun(self, kind: ActionKind) -> None:
        """An action could not even be begun (the worker was taken, or carrying it out raised): it is asked
        for again, and it counts as nothing done. Every kind: a lost MQ_READY leaves the launch hook to time out
        (ABANDON terminates a healthy instance), a lost report is never sent."""
        if kind == ActionKind.BRING_UP:
            self._forget_last_bring_up()
        elif kind == ActionKind.APPLY_MQSC:
            self.mqsc_pending = True
        elif kind in (ActionKind.END_FOR_TERMINATION, ActionKind.COMPLETE_TERMINATION):
            self.termination_begun = False
        elif kind == ActionKind.MQ_READY:
            self.start.ready_announced = False
        elif kind == ActionKind.WARM_READY:
            self.start.warm_announced = False
        elif kind in (ActionKind.HOLD, ActionKind.KEEP_LAUNCH, ActionKind.DRILL, ActionKind.SWITCHOVER):
            pass  # the hold or pause stands, keeping the instance is best effort; an operator's ask was answered
        elif kind == ActionKind.REPORT_UNHEALTHY:
            self.ep.reported = False  # the rules report again while the episode is still bad
            if not self.start.storage_seen:
                self.start.mount_failure_reported = False

    def stop(self) -> None:
        """mqguard is stopping: the state says so from now on."""
        self.state = State.STOPPING

    def step(self, obs: Observation) -> Verdict:
        """The rules, in order; the first that settles the verdict returns it. An operator's ask is answered first,
        whatever the rest concludes (the answer goes back to them with the verdict)."""
        actions: List[Action] = []
        self.prepared = prepared_after(self.prepared, obs.job_stage, obs.job_result)
        answer = None if obs.ask is None else early.operator_ask(self, obs, obs.ask, actions)
        verdict = self._step(obs, actions)
        if answer is None:
            return verdict
        if any(a.kind == ActionKind.DRILL and a.ask is not None and a.ask.drill == Drill.STOP for a in actions):
            # after the rules (this step's healthy observation would reset it): the end the drill causes is a
            # failure, not an operator's endmqm, so no waiting for their strmqm
            self.deliberate_wait = False
        return replace(verdict, answer=answer)

    def _step(self, obs: Observation, actions: List[Action]) -> Verdict:
        notes: List[str] = []
        self.pause_ends = obs.pause_ends
        settled = (early.going_away(self, obs, actions) or early.paused(self, obs, actions)
                   or early.warm(self, obs, actions) or early.wait_for_storage(self, obs, actions)
                   or early.first_bring_up(self, obs, actions))
        if settled is not None:
            return settled
        self._rule_job_finished(obs, actions)
        held = self._rule_held(obs, actions)
        if held is not None:
            return held
        j, self.seen = judge(obs, self.seen, self.settings)
        if j.overran and not self.ep.reported:  # a start past start_timeout is reported at once
            actions.append(self.report(obs, j.overran))
        if not j.bad and not j.not_yet and j.healthy_qm:
            return self._rule_fully_good(obs, j, actions)
        if j.bad:
            self._open_episode(obs.now)
        if self._rule_local_recovery(obs, j, actions, notes):
            j = replace(j, busy=True)  # the restart just asked for is in progress from now on
        self._rule_report_after_grace(obs, j, actions, notes)
        if j.waiting:
            notes.append(j.waiting)
        state = self._not_good_state(obs, j.busy, j.not_yet)
        return self.conclude(state, False, list(j.bad), actions, obs, notes)

    # ------------------------------------------------------------------ rules
    def _rule_job_finished(self, obs: Observation, actions: List[Action]) -> None:
        """A job that finished since the last step: a failed start opens an episode."""
        res = obs.job_result
        if res is None:
            return
        self.last_job_end = obs.now
        if res.mqsc_applied:
            self.healthy_as = State.RUNNING  # this start made it active: no takeover to handle
        elif res.standby:
            # a standby started here: if it takes over before a cycle has seen it as standby,
            # that takeover still gets its MQSC
            self.healthy_as = State.STANDBY
        if res.outcome in (JobOutcome.FAILED, JobOutcome.TIMED_OUT):
            self._open_episode(obs.now)
            if res.hold:
                self.hold = res.hold
                if res.report_now and not self.ep.reported:  # a fresh instance cures it: no local restarts first
                    actions.append(self.report(obs, res.hold))
                elif not res.report_now:  # a replacement would find the same: keep this instance for the operator
                    actions.append(Action(ActionKind.HOLD, res.hold))
            if res.outcome == JobOutcome.TIMED_OUT and not self.ep.reported:
                actions.append(self.report(obs, f"start exceeded start_timeout: {res.detail}"))

    def _rule_held(self, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
        """Held: a job found this host must not bring the queue manager up (its data is not where it was, or this
        installation is older than the one that last ran it). Nothing is started again; the state is failed with
        the reason, which says how to proceed. Once the queue manager is seen healthy here (an operator started
        it), the hold is over."""
        if not self.hold:
            return None
        if counts_healthy(obs.qmgr, self.settings.multi_instance, self.settings.native_ha):
            self.hold = ""
            return None
        self.state = State.FAILED
        return self.conclude(State.FAILED, False, [self.hold], actions, obs)

    def _rule_fully_good(self, obs: Observation, j: Judgement, actions: List[Action]) -> Verdict:
        """Fully good: the episode (if any) ends; a takeover gets its MQSC; the first time, MQ is ready."""
        self.ep.since = None
        self.ep.attempts = 0
        self.ep.reported = False
        self.start.up_once = True
        self.deliberate_wait = True
        # Compare roles, not adjacent statuses: a takeover may pass through STARTING.
        if j.active and self.healthy_as == State.STANDBY:
            self.mqsc_pending = True  # this instance took over as active
        # Only here, with the queue manager active and healthy and the worker free: runmqsc against a queue
        # manager that is not running exits 20 with AMQ8146E and runs nothing (ref: mq-control-commands.md,
        # runmqsc; the simulator enforces it).
        if self.mqsc_pending and obs.job_stage is None:
            self.mqsc_pending = False
            actions.append(Action(ActionKind.APPLY_MQSC, "this instance took over as active"))
        self.healthy_as = State.RUNNING if j.active else State.STANDBY
        if not self.start.ready_announced:
            self.start.ready_announced = True
            actions.append(Action(ActionKind.MQ_READY, "queue manager healthy for the first time"))
        if self.settings.native_ha:
            state, notes = native_ha_role(obs, j.active)
            return self.conclude(state, True, [], actions, obs, notes)
        return self.conclude(self.healthy_as, True, [], actions, obs)

    def _rule_local_recovery(self, obs: Observation, j: Judgement, actions: List[Action],
                             notes: List[str]) -> bool:
        """Start it again inside an episode: never while storage is bad or it runs elsewhere,
        at most restart_attempts per episode, spaced, and within the restart budget."""
        s = self.settings
        status = obs.qmgr
        restartable = status is not None and (
            status.ended or (s.multi_instance and status == QmStatus.RUNNING_ELSEWHERE)
        )
        if restartable and not j.busy and self._operator_may_be_restarting(obs, notes):
            return False
        spaced = self.last_job_end is None or obs.now - self.last_job_end >= s.restart_spacing or self.ep.attempts == 0
        if not (self.ep.since is not None and restartable and obs.storage_ok and not j.busy
                and not self.ep.reported and self.ep.attempts < s.restart_attempts and spaced):
            return False
        if self.budget_remaining(obs.now) <= 0:
            window = format_duration(s.restart_window)
            notes.append(f"{len(self.budget.times)} restarts in the last {window}: "
                         "not restarting here again; the instance will be reported")
            return False
        self.ep.attempts += 1
        self.restarts_total += 1
        self.budget.record(obs.now)
        why = f"restart attempt {self.ep.attempts}/{s.restart_attempts} ({j.bad[0] if j.bad else status})"
        actions.append(self.bring_up(why))
        return True

    def _rule_report_after_grace(self, obs: Observation, j: Judgement, actions: List[Action],
                                 notes: List[str]) -> None:
        """Report once the episode has outlasted the grace period and this observation is still bad - unless the
        storage is bad on every host: a new instance would meet the same file system (and MQ on a hard mount
        goes on by itself when it answers again)."""
        if not obs.storage_ok and obs.storage_shared_outage:
            notes.append(f"{obs.storage_shared_outage}: the file system itself is in trouble and replacing "
                         "instances cannot cure it; not reporting while that lasts")
            return
        if not obs.storage_ok and obs.storage_peers_waiting:
            notes.append(f"{obs.storage_peers_waiting}: not reporting until they answer")
            return
        if (self.ep.since is not None and j.bad and not self.ep.reported
                and obs.now - self.ep.since >= self.settings.grace_period):
            actions.append(self.report(obs, f"bad for {obs.now - self.ep.since:.0f}s: {'; '.join(j.bad)}"))

    def _operator_may_be_restarting(self, obs: Observation, notes: List[str]) -> bool:
        """After a deliberate end, an operator's strmqm may follow within seconds: do not race it."""
        if obs.qmgr not in (QmStatus.ENDED_NORMALLY, QmStatus.ENDED_IMMEDIATELY) or not self.deliberate_wait:
            return False
        if self.seen.deliberate_since is None:
            if not self.seen.ended_from_live:  # e.g. mqguard's own start failed: nobody else is at work
                return False
            self.seen = replace(self.seen, deliberate_since=obs.now)
            notes.append(f"the queue manager was {obs.qmgr.value.replace('_', ' ')} (endmqm): starting it again "
                         f"in {self.settings.deliberate_end_delay:g}s unless it is started meanwhile; "
                         "use `mqguard pause` to keep it down")
        since = self.seen.deliberate_since
        return since is None or obs.now - since < self.settings.deliberate_end_delay

    def plain_badness(self, obs: Observation) -> List[str]:
        """What is bad, without acting on it or remembering anything (while paused): the judge's words, with a
        start or another host's lock (its "not yet") said as not healthy too."""
        j, _ = judge(obs, self.seen, self.settings)
        bad = list(j.bad)
        if j.not_yet and not j.healthy_qm:
            bad.append(j.waiting or f"queue manager {obs.qmgr.value if obs.qmgr else 'starting'}")
        return bad

    def clean_slate(self, now: float) -> None:
        """Forget episodes, attempts and the budget, and stop every timer (pause and resume): the operator may
        have moved the queue manager meanwhile, so the lock wait starts again too."""
        for timer in TIMERS:
            if timer.stop is not None:
                timer.stop(self, now)
        self.ep.attempts = 0
        self.ep.reported = False
        self.deliberate_wait = False  # the operator resumed: start it now

    # ----------------------------------------------------------------- budget
    def budget_remaining(self, now: float) -> int:
        """Local restarts still allowed in the current restart_window."""
        return self.budget.remaining(now, self.settings.restart_limit, self.settings.restart_window)

    # --------------------------------------------------------------- helpers
    def bring_up(self, reason: str) -> Action:
        self.jobs_started += 1
        return Action(ActionKind.BRING_UP, reason)

    def _forget_last_bring_up(self) -> None:
        """The last bring-up never began: it is asked for again, and counts as no attempt or restart."""
        self.jobs_started = max(0, self.jobs_started - 1)
        if self.ep.attempts > 0:
            self.ep.attempts -= 1
            self.restarts_total = max(0, self.restarts_total - 1)
            self.budget.forget_last()

    def _open_episode(self, now: float) -> None:
        if self.ep.since is None:
            self.ep.since = now
            self.ep.number += 1
            self.ep.attempts = 0
            self.ep.reported = False

    def report(self, obs: Observation, reason: str) -> Action:
        self._open_episode(obs.now)
        self.ep.reported = True
        return Action(ActionKind.REPORT_UNHEALTHY, reason)

    def _not_good_state(self, obs: Observation, busy: bool, not_yet: bool) -> State:
        if self.ep.reported:
            return State.FAILED
        if self.ep.since is not None:
            return State.RECOVERING
        if obs.job_stage == JobStage.PREPARING:
            return State.PREPARING
        if busy or not_yet:
            return State.STARTING
        return State.RECOVERING if self.start.up_once else State.STARTING

    def conclude(self, state: State, healthy: bool, bad: List[str], actions: List[Action], obs: Observation,
                 notes: Sequence[str] = ()) -> Verdict:
        self.state = state
        age = "" if self.ep.since is None else f" for {obs.now - self.ep.since:.0f}s"
        why = f": {'; '.join(bad)}" if bad else ""
        acts = "".join(f"; -> {a.kind.value} ({a.reason})" for a in actions)
        said = "".join(f"; {n}" for n in notes)
        return Verdict(state, healthy, bad, actions, f"{state.value}{age}{why}{acts}{said}", tuple(notes))

    def next_deadline(self, now: float) -> Optional[float]:
        """The next future moment a decision could change with no new event: the earliest running timer."""
        future = [t for t in (timer.due(self) for timer in TIMERS) if t is not None and t > now]
        return min(future) if future else None

    def still_bad(self, episode: int) -> bool:
        """Is bad episode ``episode`` still going on? (Asked from the reporting thread.)"""
        return self.ep.number == episode and self.ep.since is not None

    def bad_seconds(self, now: float) -> float:
        return 0.0 if self.ep.since is None else max(0.0, now - self.ep.since)

