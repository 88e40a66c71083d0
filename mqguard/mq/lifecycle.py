"""Multi-step queue-manager procedures: prepare, start, apply MQSC, end.

Starting and ending go through a ``QueueManagerService`` (mqguard's child, or
the queue manager's systemd unit: see ``service.py``).

These block (they run MQ commands and touch EFS), so the daemon runs them on
its worker thread, never on the supervision loop.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, FrozenSet, List, Optional

from mqguard.mq.control import (
    DSPMQINF_NOT_FOUND,
    RUNMQSC_NOTHING,
    RUNMQSC_PARTIAL,
    MqControl,
    StartOutcome,
    StartResult,
    mqsc_files,
)
from mqguard.mq.service import ChildService, QueueManagerService, Role
from mqguard.mq.status import QmStatus
from mqguard.statedir import STATE_DIR, UnsafePath, allowed_owners, open_regular, open_state_dir
from mqguard.untrusted import read_regular

log = logging.getLogger(__name__)

_LOCK_POLL = 0.5


class PrepareError(Exception):
    """The queue manager cannot be made ready on this host (yet)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class MqscSummary:
    applied: List[str] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)  # exit 10/20 or timeout: logged and counted


CREATE_LOCK = "create.lock"


def create_lock_path(storage_path: str) -> str:
    return os.path.join(storage_path, STATE_DIR, CREATE_LOCK)


class Lifecycle:
    def __init__(self, control: MqControl, mqsc_dir: str, create: bool, lock_timeout: float,
                 owners: Optional[FrozenSet[int]] = None, service: Optional[QueueManagerService] = None) -> None:
        self.control = control
        self.service: QueueManagerService = service or ChildService(control)
        self.owners = owners if owners is not None else allowed_owners(control.qm.run_as)
        self.mqsc_dir = mqsc_dir
        self.create = create
        self.lock_timeout = lock_timeout

    # -- preparation -------------------------------------------------------
    def prepare(self) -> str:
        """Make the queue manager known on this host; returns what was done.

        Raises PrepareError with the reason when it cannot.
        """
        done = self._known_or_registered()
        if done:
            return done
        if not self.create:
            raise PrepareError(
                f"no queue manager data at {self.control.data_path} and create = false"
            )
        # Two instances may race here on a fresh EFS: only one may run crtmqm.
        with CreateLock(self.control.storage_path, self.lock_timeout, self.owners):
            done = self._known_or_registered()
            if done:
                return done + " (after waiting for the create lock)"
            res = self.control.crtmqm()
            if not res.ok():
                raise PrepareError(f"crtmqm failed: {res.describe()}", timed_out=res.timed_out)
            log.info("created queue manager %s with data in %s", self.control.name, self.control.data_path)
            return "created"

    def _known_or_registered(self) -> str:
        res = self.control.dspmqinf()
        if res.ok((0,)):
            return "known"
        if res.returncode != DSPMQINF_NOT_FOUND:
            raise PrepareError(f"dspmqinf failed: {res.describe()}")
        if self.control.data_exists():
            add = self.control.addmqinf()
            if not add.ok((0, 45)):
                raise PrepareError(f"addmqinf failed: {add.describe()}")
            log.info("registered existing queue manager %s from %s", self.control.name, self.control.data_path)
            return "registered"
        return ""

    # -- start -------------------------------------------------------------
    def start(self) -> StartOutcome:
        """Start unless dspmq shows it already running here (then adopt it)."""
        reading = self.control.dspmq()
        if reading.status == QmStatus.RUNNING:
            return StartOutcome(StartResult.ALREADY_RUNNING, "adopted the running queue manager")
        if reading.status == QmStatus.RUNNING_AS_STANDBY and self.control.qm.multi_instance:
            return StartOutcome(StartResult.STANDBY, "adopted the running standby instance")
        if reading.status == QmStatus.RUNNING_ELSEWHERE and not self.control.qm.multi_instance:
            return StartOutcome(StartResult.ELSEWHERE, "the queue manager runs on another host")
        return self.service.start()

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
            if res.ok():
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


class CreateLock:
    """An exclusive POSIX lock on ``.mqguard/create.lock`` on EFS (NFSv4 locks are cluster-wide).

    Opened like every file in the state directory: relative to its fd, never
    through a link, a regular file only.
    """

    def __init__(self, storage_path: str, timeout: float, owners: FrozenSet[int],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.storage_path = storage_path
        self.path = create_lock_path(storage_path)
        self.timeout = timeout
        self.owners = owners
        self.sleep = sleep
        self.fd = -1

    def __enter__(self) -> CreateLock:
        try:
            dir_fd = open_state_dir(self.storage_path, self.owners)
            try:
                self.fd = open_regular(dir_fd, CREATE_LOCK)
            finally:
                os.close(dir_fd)
        except UnsafePath as exc:
            raise PrepareError(f"create lock: {exc.strerror}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    os.close(self.fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(self.fd)
                raise PrepareError(f"create lock {self.path} still held by another instance after {self.timeout:.0f}s")
            log.info("waiting for create lock %s (held by another instance)", self.path)
            self.sleep(_LOCK_POLL)

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
