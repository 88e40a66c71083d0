"""The machine's rules that settle a step before the queue manager is judged: an operator's ask (answered
first, whatever the rest concludes), an instance going away, a pause, a warm-pool instance, the wait for the
storage and the first bring-up. Each takes the machine (machine.py) and returns its verdict when it settles the
step, else None; the machine's step calls them in this order."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, List, Optional, Tuple

from mqguard.base.durations import format_duration
from mqguard.supervisor.model import (
    DRILL_SAYS,
    Action,
    ActionKind,
    Ask,
    Observation,
    OperatorAsk,
    State,
    Verdict,
)

if TYPE_CHECKING:
    from mqguard.supervisor.machine import Machine


def operator_ask(m: Machine, obs: Observation, ask: OperatorAsk, actions: List[Action]) -> Tuple[bool, str]:
    """A drill or a switchover an operator asked for: refused (and why), or turned into its action."""
    if obs.going_away:
        return False, "refused: the instance is going away"
    if ask.what == Ask.SWITCHOVER:
        if obs.job_stage is not None:
            return False, (f"refused: mqguard is busy with another job ({obs.job_stage.value}); try again in a "
                           "moment")
        actions.append(Action(ActionKind.SWITCHOVER, f"switchover asked by {ask.who}", ask))
        return True, "switching over"
    if ask.drill is None:
        return False, "refused: a drill needs its kind (crash, stop or unhealthy)"
    interval = m.settings.drill_interval
    if m.last_drill is not None and obs.now - m.last_drill < interval:
        ago = obs.now - m.last_drill
        return False, (f"refused: the last drill was {ago:.0f}s ago; one drill per {format_duration(interval)} "
                       f"([control] drill_interval; the next in {interval - ago:.0f}s)")
    if obs.paused:
        return False, "refused: supervision is paused; resume first (a drill must be recovered from)"
    if m.state not in (State.RUNNING, State.STANDBY, State.REPLICA, State.REPLICA_BEHIND):
        return False, f"refused: mqguard is {m.state.value}; a drill needs a healthy queue manager"
    m.last_drill = obs.now
    actions.append(Action(ActionKind.DRILL, f"{ask.drill.value} drill asked by {ask.who}", ask))
    return True, DRILL_SAYS[ask.drill]

def going_away(m: Machine, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
    """Going away: never start, never report; not healthy, so load balancers drain."""
    if not obs.going_away:
        return None
    if obs.qmgr is not None:
        m.seen = replace(m.seen, last_status=obs.qmgr)
    if not m.termination_begun and obs.job_stage is None:  # a running job is let finish first
        m.termination_begun = True
        if m.settings.leave_on_termination:
            actions.append(Action(ActionKind.COMPLETE_TERMINATION, "the instance is going away; "
                                  "stop_on_exit = never: leaving the queue manager as it is"))
        else:
            actions.append(Action(ActionKind.END_FOR_TERMINATION, "the instance is going away"))
    return m.conclude(State.STOPPING, False, ["the instance is going away"], actions, obs)

def paused(m: Machine, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
    """Paused: observe and tell the truth (healthy or not), but start, end, apply and report nothing.

    Entering and leaving a pause both give a clean slate: no episode, attempt
    or budget carries over, so a report pending from before cannot be sent and
    a bad observation after it gets the full grace period. A pause before the
    queue manager ever ran here keeps the launch hook alive: else the group
    terminates the instance being investigated when the hook times out.
    """
    if obs.paused != m.was_paused:
        m.was_paused = obs.paused
        m.clean_slate(obs.now)
        if obs.paused and not m.start.ready_announced:
            actions.append(Action(ActionKind.KEEP_LAUNCH, "supervision paused before the queue manager ran "
                                                          "here: the launch is kept until the pause ends"))
    if not obs.paused:
        return None
    if obs.qmgr is not None:
        m.seen = replace(m.seen, last_status=obs.qmgr)
    if obs.storage_ok:
        m.start.storage_seen = True
    bad = m.plain_badness(obs)
    return m.conclude(State.PAUSED, not bad, bad, actions, obs)

def warm(m: Machine, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
    """Warm pool: wait for storage, then let the group stop the instance; never touch MQ."""
    if not obs.warm:
        return None
    if not obs.storage_ok:
        return m.conclude(State.WARM, False, [f"storage: {obs.storage_detail}"], actions, obs)
    if not m.start.warm_announced:
        m.start.warm_announced = True
        actions.append(Action(ActionKind.WARM_READY, "storage ready for a warm-pool instance"))
    return m.conclude(State.WARM, False, ["warm pool: the queue manager is not started here"], actions, obs)

def wait_for_storage(m: Machine, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
    """Waiting for the mount is progress, until mount_timeout (then reported at once)."""
    if m.start.storage_seen:
        return None
    if obs.storage_ok:
        m.start.storage_seen = True
        return None
    waited = obs.now - m.start.began
    if waited >= m.settings.mount_timeout and not m.start.mount_failure_reported:
        m.start.mount_failure_reported = True
        actions.append(m.report(obs, f"storage not ready after {waited:.0f}s: {obs.storage_detail}"))
    state = State.FAILED if m.ep.reported else State.WAITING_FOR_STORAGE
    return m.conclude(state, False, [f"storage: {obs.storage_detail}"], actions, obs)

def first_bring_up(m: Machine, obs: Observation, actions: List[Action]) -> Optional[Verdict]:
    """The first bring-up (prepare + start) once storage is good."""
    if m.jobs_started:
        return None
    actions.append(m.bring_up("start-up"))
    return m.conclude(State.PREPARING, False, [], actions, obs)
