"""The parts the loop works through, grouped by who reads them (built by ``cli/run.py``, the composition root).

``Sensors`` are what one observation reads (``observer.py``), ``Effectors`` what carrying out the machine's
actions and the end of supervision use (``effects.py``, ``shutdown.py``), ``LoopParts`` the loop's own (waking,
telling systemd, publishing, reloading). A part may sit in two groups (the worker is read and acted through).
None holds the configuration: the daemon's copy is the one a reload replaces, and it is passed where needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import FrozenSet, Optional, Protocol, Tuple

from mqguard.aws.autoscaling import AutoScaling
from mqguard.aws.cfn import StackSignal
from mqguard.aws.errors import AwsErrors
from mqguard.aws.lifecyclehooks import Hooks
from mqguard.aws.termination import TerminationWatch
from mqguard.base.clock import Clock
from mqguard.base.notify import Notifier
from mqguard.base.runner import CommandRunner
from mqguard.base.telemetry import Telemetry
from mqguard.config import HealthConfig
from mqguard.efs.pause import PauseWatch
from mqguard.efs.statedir import StateDirStatus
from mqguard.efs.storage import StorageProber
from mqguard.history.writer import HistoryWriter
from mqguard.mq.control import MqControl
from mqguard.mq.diagnostics import Diagnostics
from mqguard.mq.lifecycle import Lifecycle
from mqguard.mq.listener import ListenerProbe
from mqguard.mq.pidwatch import ControllerWatch
from mqguard.mq.service import QueueManagerService
from mqguard.supervisor.jobs import Jobs
from mqguard.supervisor.ports import HostRecord, PeerView
from mqguard.supervisor.reporter import Reporter
from mqguard.supervisor.wakeup import WakePipe
from mqguard.supervisor.worker import Worker


class HealthReader(Protocol):
    """A part that reads ``[health]``: a SIGHUP hands it the new section."""

    def reconfigure(self, health: HealthConfig) -> None: ...


@dataclass(frozen=True)
class Sensors:
    """What one observation reads: the mount and storage, the worker's news, MQ, the pause, the instance's fate."""

    clock: Clock
    mountinfo: str
    prober: StorageProber
    state_dir: StateDirStatus  # .mqguard: said once per change, never MQ's storage verdict
    pause_watch: PauseWatch
    worker: Worker
    jobs: Jobs
    diagnostics: Diagnostics
    control: MqControl
    listener: ListenerProbe
    peers: PeerView  # what the other hosts say of the storage while this host's is bad
    termination: Optional[TerminationWatch]  # None with report = log
    telemetry: Telemetry


@dataclass(frozen=True)
class Effectors:
    """What carrying out the machine's actions, drills and the end of supervision use."""

    worker: Worker
    jobs: Jobs
    lifecycle: Lifecycle
    control: MqControl
    runner: CommandRunner
    diagnostics: Diagnostics
    reporter: Reporter
    hooks: Optional[Hooks]
    signal: Optional[StackSignal]
    history: HistoryWriter  # this host's events, appended to the shared history on EFS off the loop
    owners: FrozenSet[int]


@dataclass(frozen=True)
class LoopParts:
    """The loop's own: waking and waiting, systemd, publishing, reloading, stopping."""

    config_path: Optional[str]
    notifier: Notifier
    wakeup: WakePipe
    watch: ControllerWatch  # amqzxma0's pidfd, waited on with the wake-up pipe
    stop_event: threading.Event  # set when shutting down: ends retries
    aws_errors: AwsErrors
    autoscaling: Optional[AutoScaling]  # None with report = log: a dry run makes no AWS call at all
    service: QueueManagerService
    hosts: HostRecord  # this host's record for `mqguard list`, kept current on EFS off the loop
    health_readers: Tuple[HealthReader, ...]  # given the new [health] on SIGHUP


@dataclass(frozen=True)
class Parts:
    """Everything the loop works through; built once, never rewired."""

    sense: Sensors
    act: Effectors
    loop: LoopParts
