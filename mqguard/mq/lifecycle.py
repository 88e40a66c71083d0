"""Multi-step queue-manager procedures: prepare (see prepare.py), start, apply MQSC, end.

Starting and ending go through a ``QueueManagerService`` (mqguard's child, or
the queue manager's systemd unit: see ``service.py``).

These block (they run MQ commands and touch EFS), so the daemon runs them on
its worker thread, never on the supervision loop.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, FrozenSet, List, Optional, Protocol

from mqguard.base.clock import iso_utc
from mqguard.base.runner import CommandResult
from mqguard.base.untrusted import read_regular
from mqguard.config import NativeHaConfig
from mqguard.efs.statedir import allowed_owners
from mqguard.mq import nhaini, qmini
from mqguard.mq.control import (
    RUNMQSC_NOTHING,
    RUNMQSC_PARTIAL,
    MqControl,
    StartOutcome,
    StartResult,
    StatusReading,
    mqsc_files,
)
from mqguard.mq.nhaini import NhaIniError
from mqguard.mq.prepare import DataMissing, Prepared, PrepareError, find_data_directories
from mqguard.mq.service import QueueManagerService, Role
from mqguard.mq.status import QmStatus

log = logging.getLogger(__name__)

STARTING_POLL = 1.0  # how often a start in progress is looked at


@dataclass(frozen=True)
class MqscSummary:
    applied: List[str] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)  # exit 10/20 or timeout: logged and counted


class Lifecycle:
    def __init__(self, control: MqControl, mqsc_dir: str, service: QueueManagerService,
                 owners: Optional[FrozenSet[int]] = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, creation: Optional[Creation] = None,
                 wall: Callable[[], float] = time.time, nha: Optional[NativeHaConfig] = None) -> None:
        self.control = control
        self.nha = nha or NativeHaConfig()  # [native_ha]: the stanzas written before every start
        self.creation = creation  # what the Auto Scaling group remembers of an earlier create (None: nothing)
        self.wall = wall
        self.service = service
        self.owners = owners if owners is not None else allowed_owners(control.qm.run_as)
        self.mqsc_dir = mqsc_dir
        self.sleep = sleep
        self.clock = clock

    # -- preparation -------------------------------------------------------
    def prepare(self) -> str:
        """Make the queue manager known on this host; returns what was done (PrepareError when it cannot)."""
        data = find_data_directories(self.control.data_parent, self.control.directory)
        empty_replica = ""
        if self.creation is not None and not data:
            if self.control.qm.native_ha:
                empty_replica = self._empty_replica()
            else:
                self._refuse_if_created_before()
        done = self.service.prepare()
        where = self.control.location or self.control.locate()
        if done == Prepared.CREATED and self.creation is not None:
            self.creation.record(f"{iso_utc(self.wall())} on {socket.gethostname()}: data in "
                                 f"{where.data_path if where else self.control.data_parent}")
        minimum = self.control.qm.file_lock_heartbeat_len
        problem = qmini.heartbeat_problem(where.data_path, minimum) if where and minimum > 0 else None
        if problem:  # a queue manager created before (by hand, or by an older mqguard): say so, change nothing
            log.warning("queue manager %s: %s", self.control.name, problem)
        said = f"{done.value} (data in {where.data_path})" if where else done.value
        return f"{said}; {empty_replica}" if empty_replica else said

    def _empty_replica(self) -> str:
        """Native HA: this host's own storage holds no instance although the group created one before. A new
        empty instance rebuilds from the active (IBM: it is sent the log), which is what a replaced volume needs;
        but it is said loudly, for a lost volume is worth knowing (contract section 28)."""
        try:
            earlier = self.creation.earlier() if self.creation is not None else None
        except Exception as exc:  # the group cannot say: creating an empty replica is safe either way
            earlier = None
            log.warning("cannot ask the Auto Scaling group whether %s was created before: %s", self.control.name, exc)
        if not earlier:
            return ""
        said = (f"EMPTY replica: instance {self.control.qm.instance_name} of {self.control.name} was created before "
                f"({earlier}) but this host's storage {self.control.data_parent} holds no data: a new, empty instance "
                "is created and rebuilds from the active instance (check why the volume was lost)")
        log.warning("%s", said)
        return said

    def _refuse_if_created_before(self) -> None:
        """No data on the storage: a first create, or the data is not where it was? The group remembers."""
        try:
            earlier = self.creation.earlier() if self.creation is not None else None
        except Exception as exc:
            raise PrepareError(f"no data of {self.control.name} in {self.control.data_parent}, and the Auto Scaling "
                               f"group cannot say whether it was created before ({exc}): nothing is created") from None
        if not earlier:
            return
        found = _what_is_there(self.control.data_parent)
        raise DataMissing(
            f"queue manager {self.control.name} was created before ({earlier}), but its data is not in "
            f"{self.control.data_parent} ({found}): nothing is created, as an empty {self.control.name} would take "
            "its clients and lose their messages. Mount the file system that holds the data (or restore it there) "
            "and restart mqguard; to create it anew on purpose: "
            f"{self.creation.how_to_recreate() if self.creation else ''}, then systemctl restart mqguard")

    # -- start -------------------------------------------------------------
    def start(self) -> StartOutcome:
        """Start unless dspmq shows it already running here (then adopt it).

        A start in progress (log replay, perhaps begun before mqguard restarted) is
        adopted and waited for, never started again: a second strmqm, or ending its
        processes, would abort the replay (reference: strmqm).
        """
        reading = self.control.dspmq()
        if reading.status == QmStatus.STARTING:
            reading = self._wait_while_starting()
            if reading.status == QmStatus.STARTING:
                return StartOutcome(StartResult.FAILED, "the start in progress did not finish within "
                                    f"start_timeout ({self.control.qm.start_timeout:.0f}s)", timed_out=True)
            if reading.status == QmStatus.RUNNING:
                return StartOutcome(StartResult.STARTED, "adopted a start in progress; it finished")
        if reading.status == QmStatus.RUNNING:
            return StartOutcome(StartResult.ALREADY_RUNNING, "adopted the running queue manager")
        if reading.status == QmStatus.RUNNING_AS_STANDBY and self.control.qm.multi_instance:
            return StartOutcome(StartResult.STANDBY, "adopted the running standby instance")
        if reading.status == QmStatus.RUNNING_ELSEWHERE and not self.control.qm.multi_instance:
            return StartOutcome(StartResult.ELSEWHERE, "the queue manager runs on another host")
        if self.control.qm.native_ha:
            if reading.status in (QmStatus.REPLICA, QmStatus.NEGOTIATING):
                return StartOutcome(StartResult.REPLICA, f"adopted the running Native HA instance "
                                                         f"({reading.status.value})")
            problem = self._native_ha_stanzas()
            if problem:
                return StartOutcome(StartResult.FAILED, problem)
        return self.service.start()

    def _native_ha_stanzas(self) -> str:
        """Write the Native HA stanzas of qm.ini from the configuration before the start (MQ reads them then);
        returns why it cannot ("" when done)."""
        where = self.control.location or self.control.locate()
        if where is None:
            return "MQ does not say where the queue manager's data is (dspmqinf): cannot write its Native HA stanzas"
        try:
            changed = nhaini.sync(where.data_path, self.nha, self.control.qm.instance_name)
        except NhaIniError as exc:
            return str(exc)
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot write the Native HA stanzas of {where.data_path}/qm.ini: {exc}"
        if changed:
            log.warning("queue manager %s: qm.ini's Native HA stanzas written from [native_ha] (%s)",
                        self.control.name, changed)
        return ""

    def _wait_while_starting(self) -> StatusReading:
        log.info("queue manager %s is starting (log replay?): waiting for that start instead of starting it again",
                 self.control.name)
        deadline = self.clock() + self.control.qm.start_timeout
        reading = self.control.dspmq()
        while reading.status == QmStatus.STARTING and self.clock() < deadline:
            self.sleep(STARTING_POLL)
            reading = self.control.dspmq()
        return reading

    def apply_mqsc(self) -> MqscSummary:
        summary = MqscSummary()
        for path in mqsc_files(self.mqsc_dir):
            try:
                script = read_mqsc(path, self.mqsc_dir, self.owners)
            except (OSError, UnicodeDecodeError) as exc:
                log.error("cannot read MQSC file %s: %s; skipping it", path, exc)
                summary.failed.append(path)
                continue
            res = self.control.runmqsc(script)
            if res.ok() or only_benign_errors(res):
                if not res.ok():
                    log.info("MQSC %s: the listener was already running (AMQ8730E): not an error", path)
                log.info("applied MQSC %s", path)
                summary.applied.append(path)
            else:
                kind = {RUNMQSC_PARTIAL: "some commands failed", RUNMQSC_NOTHING: "nothing was run"}.get(
                    res.returncode or -1, "runmqsc failed"
                )
                log.error("MQSC %s: %s (%s); carrying on", path, kind, res.describe())
                summary.failed.append(path)
        return summary

    # -- end ---------------------------------------------------------------
    def end(self, role: Role, stop_timeout: float) -> bool:
        """End the queue manager now (escalated to -i, then -p); True when it ended."""
        return self.service.end(Role(role), stop_timeout)

    def end_after_exit(self, role: Role, stop_timeout: float) -> bool:
        """End it as mqguard exits: its unit is stopped by systemd once mqguard is gone."""
        return self.service.end_after_exit(Role(role), stop_timeout)


# Errors that mean "already so": START LISTENER on a listener that crtmqm -p already runs (docs/real-mq.md)
BENIGN_MQSC_ERRORS = frozenset({"AMQ8730E"})
_MESSAGE_ID = re.compile(r"^(AMQ\d{4}[EWS])\b", re.M)


def only_benign_errors(res: CommandResult) -> bool:
    """runmqsc exit 10 whose only errors are benign ones (no syntax error)."""
    if res.returncode != RUNMQSC_PARTIAL or "No commands have a syntax error." not in res.output:
        return False
    errors = {m for m in _MESSAGE_ID.findall(res.output) if not m.endswith("W")}
    return bool(errors) and errors <= BENIGN_MQSC_ERRORS


MQSC_MAX_BYTES = 16 * 1024 * 1024


def read_mqsc(path: str, mqsc_dir: str, owners: FrozenSet[int]) -> str:
    """An MQSC file's text, read only if it is safe to hand to runmqsc.

    mqguard may run as root while runmqsc runs as the MQ user: a link to
    /etc/shadow in mqsc_dir must not turn into root reading it for MQ. So the
    file must resolve to a regular file inside mqsc_dir, owned by root,
    mqguard's user or the MQ user, not writable by others, and of sane size.
    """
    real_dir = os.path.realpath(mqsc_dir)
    real = os.path.realpath(path)
    if os.path.commonpath([real_dir, real]) != real_dir:
        raise PermissionError(f"refusing {path}: it links to {real}, outside {mqsc_dir}")
    try:
        data, st = read_regular(real, MQSC_MAX_BYTES, follow=False)
    except OSError as exc:
        raise PermissionError(f"refusing {path}: {exc}") from None
    if st.st_uid not in owners:
        raise PermissionError(f"refusing {path}: owned by uid {st.st_uid}, expected root or the MQ user")
    if st.st_mode & 0o002:
        raise PermissionError(f"refusing {path}: writable by anyone (mode {stat.S_IMODE(st.st_mode):04o})")
    return data.decode("utf-8")


class Creation(Protocol):
    """What the Auto Scaling group remembers of an earlier create (aws/creation.py)."""

    def earlier(self) -> Optional[str]: ...

    def record(self, detail: str) -> None: ...

    def how_to_recreate(self) -> str: ...


def _what_is_there(parent: str) -> str:
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return f"{parent} does not exist"
    except OSError as exc:
        return f"{parent} cannot be read: {exc.strerror}"
    if not names:
        return f"{parent} is empty"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{parent} holds {shown}"


__all__ = ["Creation", "Lifecycle", "MqscSummary", "PrepareError", "read_mqsc"]
