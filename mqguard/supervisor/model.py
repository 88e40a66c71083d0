"""The state machine's vocabulary: states, observations, actions, verdicts, settings.

Plain data, no behaviour; ``machine.py`` holds the rules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from mqguard.mq.nativeha import NhaStatus
from mqguard.mq.status import QmStatus


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
    PAUSED = "paused"  # an operator paused supervision (docs/operating.md)
    WARM = "warm"  # the instance is being prepared for an Auto Scaling warm pool (docs/operating.md)
    REPLICA = "replica"  # Native HA: this host's instance runs as a replica, in sync (docs/native-ha.md)
    REPLICA_BEHIND = "replica_behind"  # Native HA: running, not in sync (catching up, rebasing, or no quorum)


class JobStage(str, enum.Enum):
    PREPARING = "preparing"
    STARTING = "starting"
    CONFIGURING = "configuring"  # applying MQSC
    ENDING = "ending"  # ending the queue manager because the instance is going away
    SWITCHING = "switching"  # a planned switchover to the standby on another host


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
    standby: bool = False  # the job started (or adopted) a standby instance here
    hold: str = ""  # this host must not bring it up again (lost data, an older MQ): why, and how to proceed
    report_now: bool = False  # with hold: a replacement cures it, so report at once
    prepared: bool = False  # the queue manager is known on this host (dspmqinf / addmqinf / crtmqm done)


class Drill(str, enum.Enum):
    """What `mqguard drill` may inject (the names are the command line's)."""

    CRASH = "crash"  # kill -9 of the execution controller amqzxma0
    STOP = "stop"  # endmqm -i, treated as a failure
    UNHEALTHY = "unhealthy"  # an Unhealthy report to Auto Scaling now


class Ask(str, enum.Enum):
    """What an operator asks the loop to do (over the control socket); the machine accepts or refuses."""

    DRILL = "drill"
    SWITCHOVER = "switchover"


DRILL_SAYS: Dict[Drill, str] = {  # what each drill does, as the operator is told when it is accepted
    Drill.CRASH: "drill crash: mqguard kills the execution controller amqzxma0 (kill -9); watch it recover with "
                 "mqguard status and mqguard history",
    Drill.STOP: "drill stop: mqguard runs endmqm -i and treats the end as a failure; watch it recover with "
                "mqguard status and mqguard history",
    Drill.UNHEALTHY: "drill unhealthy: mqguard reports this instance Unhealthy to Auto Scaling now; the group "
                     "replaces it (mqguard history on any host shows the failover)",
}


@dataclass(frozen=True)
class OperatorAsk:
    """One operator's request, carried into the next observation; answered in that step's verdict."""

    what: Ask
    who: str = "?"
    drill: Optional[Drill] = None
    standby: Tuple[str, ...] = ()  # switchover: the standby hosts dspmq -x listed when it was asked
    say: Callable[[str], None] = field(default=lambda text: None, compare=False, repr=False)  # progress, to them
    done: Callable[[bool, str], None] = field(default=lambda ok, text: None, compare=False, repr=False)


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
    paused: bool = False  # an operator's pause is in force: observe only
    pause_ends: Optional[float] = None  # monotonic moment the pause in force expires (a deadline)
    warm: bool = False  # IMDS says Warmed:*: never create, register or start MQ
    # the other hosts of this queue manager say their storage is bad too (who, and what they said): the file
    # system itself is in trouble, and replacing instances cannot cure it; "" when not so, or not known
    storage_shared_outage: str = ""
    # the peers being asked that question and not heard from yet (bounded by the peer module): hold the report
    storage_peers_waiting: str = ""
    ask: Optional[OperatorAsk] = None  # an operator's drill or switchover, asked since the last step
    storage_checked_at: Optional[float] = None  # monotonic moment this cycle's probe found the storage good
    nha: Optional[NhaStatus] = None  # Native HA: dspmq -o nativeha -x while this host's instance runs
    nha_rejected: str = ""  # Native HA, not connected to its peers: MQ's AMQ3209E (a configuration mismatch)


class ActionKind(str, enum.Enum):
    BRING_UP = "bring_up"  # prepare if needed, start, apply MQSC when active
    APPLY_MQSC = "apply_mqsc"  # became active by takeover
    REPORT_UNHEALTHY = "report_unhealthy"
    MQ_READY = "mq_ready"  # first healthy observation (completes the launch hook)
    WARM_READY = "warm_ready"  # warm-pool preparation done (completes the launch hook, MQ not started)
    END_FOR_TERMINATION = "end_for_termination"  # going away: end MQ cleanly, then complete the termination hook
    COMPLETE_TERMINATION = "complete_termination"  # going away with stop_on_exit = never: leave MQ, complete it
    HOLD = "hold"  # held for an operator (lost data): keep the instance (its launch hook alive), report nothing
    KEEP_LAUNCH = "keep_launch"  # paused before MQ ever ran here: heartbeat the launch hook until the pause ends
    DRILL = "drill"  # inject the failure an operator's drill asked for (the ask says which)
    SWITCHOVER = "switchover"  # hand the queue manager to the standby (a worker job)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: str
    ask: Optional[OperatorAsk] = None  # DRILL and SWITCHOVER: the operator's request it carries out


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
    deliberate_end_delay: float = 2.0  # after "ended normally/immediately": an operator may be restarting it
    lock_wait: float = 180.0  # single instance: "running elsewhere" (a stale NFS lock?) is waited for this long
    leave_on_termination: bool = False  # stop_on_exit = never: a going-away instance leaves MQ as it is
    drill_interval: float = 0.0  # least time between two accepted drills ([control] drill_interval)
    native_ha: bool = False  # [queue_manager] ha = native_ha: every running role is healthy, a replica too


@dataclass(frozen=True)
class Verdict:
    """What one step concluded; the runner logs ``line`` when it changes."""

    state: State
    healthy: bool
    bad_reasons: List[str]
    actions: List[Action]
    line: str
    notes: Tuple[str, ...] = ()  # decisions worth a log line that are not badness (e.g. budget spent)
    answer: Optional[Tuple[bool, str]] = None  # to the operator's ask of this step: (accepted, what to tell them)

    @property
    def key(self) -> tuple[object, ...]:
        """What makes a verdict worth logging again (not the episode's age)."""
        return (self.state, tuple(self.bad_reasons), tuple(self.actions), self.notes)


@dataclass
class StartUp:
    """From process start until the queue manager is first seen healthy, and what is announced once."""

    began: float  # monotonic moment supervision began (again, after a pause before storage was seen)
    storage_seen: bool = False  # storage was good once: bring-up may begin
    up_once: bool = False  # queue manager was healthy once
    mount_failure_reported: bool = False
    ready_announced: bool = False
    warm_announced: bool = False


@dataclass
class Episode:
    """The current bad episode: from the first bad observation to the first fully good one."""

    number: int = 0  # counts bad episodes; a report belongs to one
    since: Optional[float] = None  # None: no episode open
    attempts: int = 0  # local start attempts in this episode
    reported: bool = False
