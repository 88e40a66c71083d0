"""Thin, typed wrappers over each MQ control command and its exit codes."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

from mqguard.config import QueueManagerConfig
from mqguard.mq.names import directory_name
from mqguard.mq.runner import CommandResult, CommandRunner
from mqguard.mq.status import DspmqEntry, ParseError, QmStatus, find_entry

MQ_PREFIX = "/var/mqm"  # MQ's fixed installation data prefix (addmqinf Prefix=)

# strmqm exit codes (IBM MQ documentation)
STRMQM_STARTED = 0
STRMQM_ALREADY_RUNNING = 5
STRMQM_STANDBY_STARTED = 30
STRMQM_ELSEWHERE = (31, 43, 47)
DSPMQINF_NOT_FOUND = 44
ADDMQINF_EXISTS = 45
ENDMQM_NOT_RUNNING = 40
ENDMQM_NO_QMGR = 16
RUNMQSC_PARTIAL = 10
RUNMQSC_NOTHING = 20


@dataclass(frozen=True)
class StatusReading:
    """One dspmq observation: a status, or why there is none."""

    status: Optional[QmStatus]
    entry: Optional[DspmqEntry] = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None


class StartResult(str, enum.Enum):
    STARTED = "started"
    ALREADY_RUNNING = "already_running"
    STANDBY = "standby"
    ELSEWHERE = "elsewhere"
    FAILED = "failed"


@dataclass(frozen=True)
class StartOutcome:
    result: StartResult
    detail: str
    timed_out: bool = False


class MqControl:
    """The queue manager as seen through its control commands."""

    def __init__(self, qm: QueueManagerConfig, storage_path: str, runner: CommandRunner, command_timeout: float):
        self.qm = qm
        self.name = qm.name
        self.storage_path = storage_path
        self.runner = runner
        self.command_timeout = command_timeout

    def _bin(self, command: str) -> str:
        return os.path.join(self.qm.mq_bin_dir, command)

    # -- paths -------------------------------------------------------------
    @property
    def data_parent(self) -> str:
        """Where queue-manager data directories live (crtmqm -md)."""
        return self.qm.data_dir or os.path.join(self.storage_path, "qmgrs")

    @property
    def data_path(self) -> str:
        return os.path.join(self.data_parent, directory_name(self.name))

    def data_exists(self) -> bool:
        """qm.ini in the data directory on EFS (touches EFS: worker thread only)."""
        return os.path.isfile(os.path.join(self.data_path, "qm.ini"))

    # -- queries -----------------------------------------------------------
    def dspmq(self) -> StatusReading:
        argv = [self._bin("dspmq"), "-n", "-m", self.name]
        if self.qm.multi_instance:
            argv.append("-x")
        res = self.runner.run(argv, self.command_timeout)
        if not res.ok():
            return StatusReading(None, error=res.describe())
        try:
            entry = find_entry(res.output, self.name)
        except ParseError as exc:
            return StatusReading(None, error=f"cannot parse dspmq output: {exc}")
        return StatusReading(entry.status, entry)

    def dspmqinf(self) -> CommandResult:
        """exit 0: registered on this host; 44: not."""
        argv = [self._bin("dspmqinf"), self.name]
        return self.runner.run(argv, self.command_timeout, ok_codes=(0, DSPMQINF_NOT_FOUND))

    # -- preparation -------------------------------------------------------
    def addmqinf(self) -> CommandResult:
        argv = [
            self._bin("addmqinf"), "-s", "QueueManager",
            "-v", f"Name={self.name}",
            "-v", f"Directory={directory_name(self.name)}",
            "-v", f"Prefix={MQ_PREFIX}",
            "-v", f"DataPath={self.data_path}",
        ]
        return self.runner.run(argv, self.command_timeout, ok_codes=(0, ADDMQINF_EXISTS))

    def crtmqm(self) -> CommandResult:
        argv = [self._bin("crtmqm")]
        if self.qm.data_dir:
            argv += ["-md", self.qm.data_dir]
        if self.qm.log_dir:
            argv += ["-ld", self.qm.log_dir]
        argv += list(self.qm.crtmqm_options) + [self.name]
        # crtmqm formats log files: allow it the start budget, not a query's.
        return self.runner.run(argv, self.qm.start_timeout, ok_codes=(0,))

    # -- start / stop ------------------------------------------------------
    def strmqm_argv(self) -> List[str]:
        return [self._bin("strmqm")] + (["-x"] if self.qm.multi_instance else []) + [self.name]

    def strmqm(self) -> StartOutcome:
        res = self.runner.run(self.strmqm_argv(), self.qm.start_timeout, ok_codes=(0, 5, 30, 31, 43, 47))
        return classify_strmqm(res, self.qm.multi_instance)

    def endmqm(self, mode: Sequence[str], timeout: float) -> CommandResult:
        argv = [self._bin("endmqm")] + list(mode) + [self.name]
        return self.runner.run(argv, timeout, ok_codes=(0, ENDMQM_NOT_RUNNING, ENDMQM_NO_QMGR))

    def runmqsc(self, script: str) -> CommandResult:
        return self.runner.run(
            [self._bin("runmqsc"), self.name], self.command_timeout * 4, stdin=script, ok_codes=(0,)
        )


def classify_strmqm(res: CommandResult, multi_instance: bool) -> StartOutcome:
    """Map strmqm's result to what it means for mqguard."""
    if res.timed_out:
        return StartOutcome(StartResult.FAILED, f"strmqm did not finish within {res.duration:.0f}s", timed_out=True)
    if res.returncode is None:
        return StartOutcome(StartResult.FAILED, res.describe())
    outcome = classify_strmqm_code(res.returncode, multi_instance)
    return outcome if outcome.result != StartResult.FAILED else StartOutcome(StartResult.FAILED, res.describe())


def classify_strmqm_code(code: int, multi_instance: bool) -> StartOutcome:
    """Map strmqm's exit code to what it means for mqguard."""
    if code == STRMQM_STARTED:
        return StartOutcome(StartResult.STARTED, "started")
    if code == STRMQM_ALREADY_RUNNING:
        return StartOutcome(StartResult.ALREADY_RUNNING, "already running")
    if code == STRMQM_STANDBY_STARTED:
        if multi_instance:
            return StartOutcome(StartResult.STANDBY, "standby instance started")
        return StartOutcome(StartResult.FAILED, "strmqm started a standby, but multi_instance is off")
    if code in STRMQM_ELSEWHERE:
        return StartOutcome(StartResult.ELSEWHERE, f"an active instance runs elsewhere (exit {code})")
    return StartOutcome(StartResult.FAILED, f"exit {code}")


def mqsc_files(directory: str) -> List[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".mqsc"))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
