"""The record of every part the loop observes and acts through (built by ``cli/run.py``, the composition root)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import FrozenSet, Optional

from mqguard.aws.autoscaling import AutoScaling
from mqguard.aws.cfn import StackSignal
from mqguard.aws.errors import AwsErrors
from mqguard.aws.lifecyclehooks import Hooks
from mqguard.aws.termination import TerminationWatch
from mqguard.base.clock import Clock
from mqguard.base.notify import Notifier
from mqguard.base.runner import CommandRunner
from mqguard.base.telemetry import Telemetry
from mqguard.config import Config
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


@dataclass(frozen=True)
class Parts:
    """Everything the loop observes and acts through; built once, never rewired."""

    cfg: Config  # as loaded at start (a reload changes the daemon's copy, never the parts)
    config_path: Optional[str]
    clock: Clock
    mountinfo: str
    notifier: Notifier
    telemetry: Telemetry
    runner: CommandRunner
    control: MqControl
    service: QueueManagerService
    lifecycle: Lifecycle
    diagnostics: Diagnostics
    owners: FrozenSet[int]
    prober: StorageProber
    state_dir: StateDirStatus
    pause_watch: PauseWatch
    watch: ControllerWatch
    listener: ListenerProbe
    wakeup: WakePipe
    worker: Worker
    stop_event: threading.Event  # set when shutting down: ends retries
    aws_errors: AwsErrors
    autoscaling: Optional[AutoScaling]  # None with report = log: a dry run makes no AWS call at all
    termination: Optional[TerminationWatch]
    hooks: Optional[Hooks]
    signal: Optional[StackSignal]
    reporter: Reporter
    jobs: Jobs
    history: HistoryWriter  # this host's events, appended to the shared history on EFS off the loop
    hosts: HostRecord  # this host's record for `mqguard list`, kept current on EFS off the loop
    peers: PeerView  # what the other hosts say of the storage while this host's is bad
