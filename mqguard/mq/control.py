"""Thin, typed wrappers over each MQ control command and its exit codes."""

from __future__ import annotations

import enum
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mqguard.base.runner import CommandResult, CommandRunner
from mqguard.config import HealthConfig, QueueManagerConfig
from mqguard.mq import level, qmini
from mqguard.mq.names import directory_name
from mqguard.mq.nativeha import NhaStatus, parse_nativeha
from mqguard.mq.status import DspmqEntry, ParseError, QmStatus, find_entry

log = logging.getLogger(__name__)

MQ_PREFIX = "/var/mqm"  # addmqinf Prefix= when MQ cannot say its root (IBM's recipe and mq-container pass /var/mqm)

# strmqm exit codes (IBM MQ documentation)
STRMQM_STARTED = 0
STRMQM_ALREADY_RUNNING = 5
STRMQM_STANDBY_STARTED = 30
STRMQM_REPLICA_STARTED = 94  # Native HA: a replica started (IBM's container takes it as success; nha: 3)
STRMQM_ELSEWHERE = (31, 43, 47)
DSPMQINF_NOT_FOUND = 44
ADDMQINF_EXISTS = 45
ENDMQM_NOT_RUNNING = 40
STRMQM_ANSWERS = (STRMQM_STARTED, STRMQM_ALREADY_RUNNING, STRMQM_STANDBY_STARTED, *STRMQM_ELSEWHERE)  # not failures
STRMQM_LEFTOVERS = 24  # AMQ8041S: processes of the last instance still run
STRMQM_BEING_CREATED = 3  # another host's crtmqm is still under way: wait, not a failure (reference: strmqm)
CREATION_POLL = 1.0  # how often a start that met "being created" is tried again
ENDMQM_NO_QMGR = 16
CRTMQDIR_WARNINGS = 10  # done, with warnings (reference: dspmqinf; IBM's container carries on after it)
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
    REPLICA = "replica"  # Native HA: this instance runs as a replica (strmqm 94, or dspmq says so)
    ELSEWHERE = "elsewhere"
    FAILED = "failed"


@dataclass(frozen=True)
class StartOutcome:
    result: StartResult
    detail: str
    timed_out: bool = False


@dataclass(frozen=True)
class QmLocation:
    """Where MQ keeps the queue manager, as MQ itself says (``dspmqinf -o stanza``)."""

    directory: str  # Directory= (may carry a .000 suffix)
    data_path: str  # DataPath=, or <root>/qmgrs/<Directory> when MQ has none


def parse_stanza(text: str) -> Dict[str, str]:
    """``KEY=VALUE`` attribute lines of a dspmqinf stanza (bounded: at most 64 lines)."""
    attrs: Dict[str, str] = {}
    for line in text.splitlines()[:64]:
        key, sep, value = line.strip().partition("=")
        if sep and key.isalpha():
            attrs[key] = value.strip()
    return attrs


def parse_dspmqver_root(text: str) -> Optional[str]:
    """``DataPath:`` of dspmqver's output (MQ's root: mqs.ini, errors/, FDC files)."""
    for line in text.splitlines()[:200]:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "DataPath" and value.strip().startswith("/"):
            return os.path.normpath(value.strip())
    return None


class MqControl:
    """The queue manager as seen through its control commands."""

    def __init__(self, qm: QueueManagerConfig, storage_path: str, runner: CommandRunner, command_timeout: float):
        self.qm = qm
        self.name = qm.name
        self.storage_path = storage_path
        self.runner = runner
        self.command_timeout = command_timeout
        self.location: Optional[QmLocation] = None  # read back from MQ once prepared
        self._root: Optional[str] = None
        self._log_dir: Optional[str] = None  # qm.ini's Log: LogPath, read once the location is known
        self._version: Optional[str] = None  # this installation's IBM MQ level (dspmqver), asked until it answers

    def reconfigure(self, health: HealthConfig) -> None:
        """A reload's [health] (SIGHUP): every command from now on gets its command_timeout."""
        self.command_timeout = health.command_timeout
    def _bin(self, command: str) -> str:
        return os.path.join(self.qm.mq_bin_dir, command)

    # -- paths -------------------------------------------------------------
    @property
    def data_parent(self) -> str:
        """Where queue-manager data directories live (crtmqm -md); config puts it on the shared storage."""
        return self.qm.data_dir

    @property
    def log_parent(self) -> str:
        """crtmqm -ld; config puts it on the shared storage."""
        return self.qm.log_dir

    @property
    def directory(self) -> str:
        """The directory name MQ derives from the name (before any .000 suffix)."""
        return directory_name(self.name)

    @property
    def data_path(self) -> str:
        """The queue manager's data directory: as MQ says once known, else the name's directory."""
        return self.location.data_path if self.location else os.path.join(self.data_parent, self.directory)

    def own_dirs(self) -> Tuple[str, ...]:
        """The queue manager's own data and log directories (what MQ writes), once MQ has said where they are;
        () before. Reads qm.ini once (on the caller's thread: the storage probe's, which may hang on EFS)."""
        where = self.location
        if where is None:
            return ()
        if self._log_dir is None:
            try:
                log_path = qmini.read(where.data_path).get("Log", {}).get("LogPath", "")
            except OSError:
                log_path = ""
            if log_path.startswith("/"):
                self._log_dir = os.path.normpath(log_path)
        return (where.data_path,) + ((self._log_dir,) if self._log_dir else ())

    def qmgr_errors_dir(self) -> Optional[str]:
        """The queue manager's own error logs (<DataPath>/errors), once MQ has said where it lives."""
        return os.path.join(self.location.data_path, "errors") if self.location else None

    def root_errors_dir(self) -> Optional[str]:
        """MQ's system error log and FDC files (<MQ root>/errors), once the queue manager is known here."""
        root = self.mq_root() if self.location else None
        return os.path.join(root, "errors") if root else None

    def mq_version(self) -> Optional[str]:
        """This installation's IBM MQ level (dspmqver's Version, e.g. 9.4.0.0); None while MQ does not say."""
        if self._version is None:
            res = self.runner.run([self._bin("dspmqver")], self.command_timeout)
            self._version = level.parse_version(res.output) if res.ok() else None
        return self._version

    def known_mq_version(self) -> Optional[str]:
        """The level ``mq_version`` found, without asking dspmqver (for threads that must not run commands)."""
        return self._version

    def mq_root(self) -> Optional[str]:
        """MQ's own root (mqs.ini, errors/): $MQ_DATA_PATH, else dspmqver's DataPath (asked until it answers).

        None while MQ cannot say: never a guessed /var/mqm (docs/real-mq.md)."""
        if self._root is None:
            env = self.runner.environment().get("MQ_DATA_PATH", "")
            if env.startswith("/"):
                self._root = os.path.normpath(env)
            else:
                res = self.runner.run([self._bin("dspmqver")], self.command_timeout)
                self._root = parse_dspmqver_root(res.output) if res.ok() else None
        return self._root

    # -- queries -----------------------------------------------------------
    def dspmq(self, instances: bool = False) -> StatusReading:
        """dspmq -n -m NAME (with -x for a multi-instance queue manager, or when ``instances`` is asked for)."""
        argv = [self._bin("dspmq"), "-n", "-m", self.name]
        if self.qm.multi_instance or instances:
            argv.append("-x")
        res = self.runner.run(argv, self.command_timeout)
        if not res.ok():
            return StatusReading(None, error=res.describe())
        try:
            entry = find_entry(res.output, self.name)
        except ParseError as exc:
            return StatusReading(None, error=f"cannot parse dspmq output: {exc}")
        return StatusReading(entry.status, entry)

    def nativeha(self) -> Tuple[Optional[NhaStatus], str]:
        """dspmq -o nativeha -x -m NAME: this instance's role, sync, the quorum and every instance as seen from
        here; (None, why) when it does not answer or is not that format (reference mq-native-ha.md section 4:
        IBM's "Viewing the status of Native HA queue managers"; the replica's view "might be out of date")."""
        res = self.runner.run([self._bin("dspmq"), "-o", "nativeha", "-x", "-m", self.name], self.command_timeout)
        if not res.ok():
            return None, res.describe()
        try:
            return parse_nativeha(res.output, self.name), ""
        except ParseError as exc:
            return None, f"cannot parse dspmq -o nativeha output: {exc}"

    def dspmqinf(self) -> CommandResult:
        """exit 0: registered on this host; 44: not."""
        argv = [self._bin("dspmqinf"), self.name]
        return self.runner.run(argv, self.command_timeout, ok_codes=(0, DSPMQINF_NOT_FOUND))

    def locate(self) -> Optional[QmLocation]:
        """Read back Directory/DataPath from MQ (dspmqinf -o stanza); None when MQ does not say."""
        res = self.runner.run([self._bin("dspmqinf"), "-o", "stanza", self.name], self.command_timeout)
        attrs = parse_stanza(res.stdout) if res.ok() else {}
        directory = attrs.get("Directory", "")
        if not directory or "/" in directory or directory in (".", ".."):
            return self.location
        prefix = attrs.get("Prefix") or self.mq_root()
        data_path = attrs.get("DataPath") or (os.path.join(prefix, "qmgrs", directory) if prefix else "")
        if not data_path:
            return self.location
        self.location = QmLocation(directory, os.path.normpath(data_path))
        return self.location

    # -- preparation -------------------------------------------------------
    def crtmqdir(self) -> CommandResult:
        return self.runner.run([self._bin("crtmqdir"), "-s", "-f"], self.command_timeout * 4,
                               ok_codes=(0, CRTMQDIR_WARNINGS))

    def addmqinf(self, where: QmLocation) -> CommandResult:
        argv = [
            self._bin("addmqinf"), "-s", "QueueManager",
            "-v", f"Name={self.name}",
            "-v", f"Directory={where.directory}",
            "-v", f"Prefix={self.mq_root() or MQ_PREFIX}",
            "-v", f"DataPath={where.data_path}",
        ]
        return self.runner.run(argv, self.command_timeout, ok_codes=(0, ADDMQINF_EXISTS))

    def crtmqm_argv(self, ini_input: Optional[str] = None) -> List[str]:
        # Both -md and -ld, always under the shared storage (the data must be where a replacement looks); -p
        # makes MQ define a listener that starts and stops with the queue manager (IBM's container always passes
        # -p); -ii merges qm.ini stanzas such as FileLockHeartBeatLen (reference: crtmqm).
        argv = [self._bin("crtmqm"), "-md", self.data_parent, "-ld", self.log_parent]
        if self.qm.native_ha:  # a Native HA instance: replicated log, this host's instance name (nha: 1)
            argv += ["-lr", self.qm.instance_name]
        if self.qm.listener_port > 0:
            argv += ["-p", str(self.qm.listener_port)]
        options, _ = split_ini_input(self.qm.crtmqm_options)
        return argv + options + (["-ii", ini_input] if ini_input else []) + [self.name]

    def crtmqm(self) -> CommandResult:
        """crtmqm with the operator's options and mqguard's qm.ini tuning (FileLockHeartBeatLen, after the
        operator's own -ii input, so it wins)."""
        _, theirs = split_ini_input(self.qm.crtmqm_options)
        try:
            with qmini.crtmqm_input(self.qm.file_lock_heartbeat_len, theirs) as ini:
                # crtmqm formats log files: allow it the start budget, not a query's.
                return self.runner.run(self.crtmqm_argv(ini), self.qm.start_timeout, ok_codes=(0,))
        except OSError as exc:
            return CommandResult(self.crtmqm_argv(), None, "", "", 0.0, error=f"cannot prepare crtmqm -ii: {exc}")

    # -- start / stop ------------------------------------------------------
    def strmqm_argv(self) -> List[str]:
        return [self._bin("strmqm")] + (["-x"] if self.qm.multi_instance else []) + [self.name]

    def strmqm(self) -> StartOutcome:
        res = self.run_strmqm(STRMQM_ANSWERS + ((STRMQM_REPLICA_STARTED,) if self.qm.native_ha else ()))
        return classify_strmqm(res, self.qm.multi_instance, self.qm.native_ha)

    def run_strmqm(self, ok_codes: Sequence[int], sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> CommandResult:
        """strmqm, tried again while it says the queue manager is being created (exit 3: another host's crtmqm
        is under way), all within start_timeout: a race read as a wait, never as a failed start."""
        deadline = clock() + self.qm.start_timeout
        while True:
            left = max(1.0, deadline - clock())
            res = self.runner.run(self.strmqm_argv(), left, ok_codes=ok_codes)
            if res.returncode != STRMQM_BEING_CREATED or clock() + CREATION_POLL >= deadline:
                return res
            log.info("strmqm %s: the queue manager is being created (exit 3, another host's crtmqm); trying again "
                     "in %.0fs", self.name, CREATION_POLL)
            sleep(CREATION_POLL)

    def endmqm(self, mode: Sequence[str], timeout: float) -> CommandResult:
        argv = [self._bin("endmqm")] + list(mode) + [self.name]
        return self.runner.run(argv, timeout, ok_codes=(0, ENDMQM_NOT_RUNNING, ENDMQM_NO_QMGR))

    def runmqsc(self, script: str) -> CommandResult:
        return self.runner.run(
            [self._bin("runmqsc"), self.name], self.command_timeout * 4, stdin=script, ok_codes=(0,)
        )


def split_ini_input(options: Sequence[str]) -> Tuple[List[str], Optional[str]]:
    """(crtmqm options without -ii, the operator's -ii FILE|DIR or None): mqguard passes one -ii of its own."""
    out: List[str] = []
    theirs: Optional[str] = None
    i = 0
    while i < len(options):
        if options[i] == "-ii" and i + 1 < len(options):
            theirs = options[i + 1]
            i += 2
            continue
        out.append(options[i])
        i += 1
    return out, theirs


def classify_strmqm(res: CommandResult, multi_instance: bool, native_ha: bool = False) -> StartOutcome:
    """Map strmqm's result to what it means for mqguard."""
    if res.timed_out:
        return StartOutcome(StartResult.FAILED, f"strmqm did not finish within {res.duration:.0f}s", timed_out=True)
    if res.returncode is None:
        return StartOutcome(StartResult.FAILED, res.describe())
    outcome = classify_strmqm_code(res.returncode, multi_instance, native_ha)
    return outcome if outcome.result != StartResult.FAILED else StartOutcome(StartResult.FAILED, res.describe())


def classify_strmqm_code(code: int, multi_instance: bool, native_ha: bool = False) -> StartOutcome:
    """Map strmqm's exit code to what it means for mqguard."""
    if native_ha and code == STRMQM_REPLICA_STARTED:
        return StartOutcome(StartResult.REPLICA, "Native HA replica started (strmqm 94)")
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
    if code == STRMQM_BEING_CREATED:
        return StartOutcome(StartResult.FAILED, "still being created by another host's crtmqm after start_timeout "
                                                "(exit 3)", timed_out=True)
    return StartOutcome(StartResult.FAILED, f"exit {code}")


def mqsc_files(directory: str) -> List[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".mqsc"))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
