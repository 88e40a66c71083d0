"""Making the queue manager known on this host: MQ's root, register or create, and read back where it lives.

The steps follow IBM's own container tooling (mq-container ``runmqserver``:
``crtmqdir``, then ``dspmqinf``, then ``addmqinf`` when qm.ini exists on the
shared data, else ``crtmqm``) and the reference's multi-instance recipe:

1. MQ's root (the ``DataPath`` dspmqver prints) has no ``mqs.ini`` (an empty
   EFS over /var/mqm): ``crtmqdir -s -f`` before any other MQ command, which
   would otherwise fail with 71 and write an FDC.
2. ``dspmqinf NAME`` exits 0: known here.
3. the queue manager's data is on the shared storage (``<data_dir>/<dir>`` or
   ``<dir>.000``, … with a qm.ini): ``addmqinf`` with that directory.
4. else, ``create = true``: the parents of ``-md``/``-ld`` are made (mqm, mode
   2775: crtmqm does not make them), then under the create lock on EFS
   (two hosts never both run crtmqm) ``crtmqm -md -ld [-p] NAME``.

Afterwards the real ``Directory``/``DataPath`` come from ``dspmqinf -o
stanza``, never from the name (crtmqm adds ``.000`` when a leftover directory
is in the way). This touches EFS and runs MQ commands that write MQ's files,
so it runs on the worker thread, or in ``mq-prepare@NAME.service`` when the
queue manager has a unit (MQ's setgid directories cannot be made inside
mqguard's sandbox).
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import re
import stat
import time
from typing import Callable, FrozenSet, List, Optional, Tuple

from mqguard.efs.statedir import STATE_DIR, UnsafePath, allowed_owners, open_regular, open_state_dir
from mqguard.mq.control import CRTMQDIR_WARNINGS, DSPMQINF_NOT_FOUND, MqControl, QmLocation

log = logging.getLogger(__name__)

CREATE_LOCK = "create.lock"
PARENT_MODE = 0o2775  # IBM's multi-instance recipe: mqm:mqm, ug+rwx; setgid like MQ's own directories
_LOCK_POLL = 0.5


class PrepareError(Exception):
    """The queue manager cannot be made ready on this host (yet)."""

    hold = False  # True: trying again cannot help; an operator must act (see DataMissing)

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class DataMissing(PrepareError):
    """The queue manager was created before, but its data is not where it should be: nothing may be created
    (an empty queue manager would take its clients and lose their messages). Held until an operator acts."""

    hold = True


class LockUnusable(PrepareError):
    """The create lock cannot be had at all (the state directory on the storage is unusable)."""


class Prepared(str, enum.Enum):
    """What preparation did (also mq-unit prepare's exit status: see EXIT_CODES)."""

    KNOWN = "known"
    REGISTERED = "registered"
    CREATED = "created"


# mq-unit prepare's exit status (mq-prepare@.service: SuccessExitStatus=10 11)
EXIT_CODES = {Prepared.KNOWN: 0, Prepared.REGISTERED: 10, Prepared.CREATED: 11}


def prepared_from_exit(code: Optional[int]) -> Prepared:
    """What mq-prepare@.service did, from its exit status (0 when unknown: it succeeded)."""
    return next((what for what, c in EXIT_CODES.items() if c == code), Prepared.KNOWN)


def create_lock_path(storage_path: str) -> str:
    return os.path.join(storage_path, STATE_DIR, CREATE_LOCK)


class Preparation:
    def __init__(self, control: MqControl, create: bool, lock_timeout: float, owners: FrozenSet[int],
                 chown_to: Optional[Tuple[int, int]] = None, mounted: Optional[Callable[[], bool]] = None) -> None:
        self.control = control
        self.mounted = mounted  # asked right before anything is created: never MQ's directories on the local disk
        self.create = create
        self.lock_timeout = lock_timeout
        self.owners = owners
        self.chown_to = chown_to  # (uid, gid) of the MQ user when mqguard itself is root

    def run(self) -> Prepared:
        """Raises PrepareError with the reason when the queue manager cannot be made ready."""
        self.ensure_root()
        if self._known():
            return Prepared.KNOWN
        if self.create:
            self._make_parents()
        # Registering and creating both happen under the create lock: two hosts never both run crtmqm, and a host
        # never registers (then starts) a queue manager whose crtmqm is still under way on another host.
        try:
            lock = CreateLock(self.control.storage_path, self.lock_timeout, self.owners,
                              mount_point=self.mounted is not None)
            lock.__enter__()
        except LockUnusable as exc:
            # .mqguard cannot hold the lock (a broken state directory): an existing queue manager is still
            # registered (strmqm then waits out a create under way, exit 3), but nothing is created without it
            done = self._registered()
            if done is not None:
                log.warning("registered %s without the create lock (%s)", self.control.name, exc)
                return done
            raise PrepareError(f"no queue manager data in {self.control.data_parent}, and without the create lock "
                               f"({exc}) nothing is created") from None
        try:
            done = self._registered()
            if done is not None:
                return done
            if not self.create:
                raise PrepareError(f"no queue manager data in {self.control.data_parent} and create = false")
            res = self.control.crtmqm()
            if not res.ok():
                raise PrepareError(f"crtmqm failed: {res.describe()}", timed_out=res.timed_out)
        finally:
            lock.__exit__()
        where = self.control.locate()
        log.info("created queue manager %s: data in %s, logs in %s", self.control.name,
                 where.data_path if where else "?", self.control.log_parent)
        return Prepared.CREATED

    def ensure_root(self) -> None:
        """crtmqdir -s -f when MQ's root has no mqs.ini (an empty file system over /var/mqm)."""
        root = self.control.mq_root()
        if root is None:
            raise PrepareError("MQ does not say where its root is (dspmqver failed); nothing is guessed")
        problem = shared_root_problem(root, self.control.storage_path, self.control.qm.multi_instance)
        if problem:
            raise PrepareError(problem)
        if os.path.isfile(os.path.join(root, "mqs.ini")):
            return
        log.warning("MQ's root %s has no mqs.ini (an empty file system?): preparing it with crtmqdir -s -f", root)
        res = self.control.crtmqdir()
        if not res.ok((0, CRTMQDIR_WARNINGS)):
            raise PrepareError(f"crtmqdir failed: {res.describe()}")
        if res.returncode == CRTMQDIR_WARNINGS:  # done with warnings: carry on, as IBM's own container does
            log.warning("crtmqdir -s -f finished with warnings (exit 10); carrying on: %s",
                        " ".join(res.output.split())[:300] or "no text")

    def _known(self) -> bool:
        """Registered on this host already (dspmqinf exit 0)."""
        res = self.control.dspmqinf()
        if res.ok((0,)):
            self.control.locate()
            return True
        if res.returncode != DSPMQINF_NOT_FOUND:
            raise PrepareError(f"dspmqinf failed: {res.describe()}")
        return False

    def _registered(self) -> Optional[Prepared]:
        """KNOWN, or REGISTERED from the data on the storage (addmqinf), or None when there is none."""
        if self._known():
            return Prepared.KNOWN
        found = find_data_directories(self.control.data_parent, self.control.directory)
        if not found:
            return None
        if len(found) > 1:
            raise PrepareError(f"several data directories for {self.control.name} in {self.control.data_parent} "
                               f"({', '.join(found)}): remove the stale ones (or register the right one with "
                               "addmqinf) before mqguard can choose")
        where = QmLocation(found[0], os.path.join(self.control.data_parent, found[0]))
        add = self.control.addmqinf(where)
        if not add.ok((0, 45)):
            raise PrepareError(f"addmqinf failed: {add.describe()}")
        self.control.locate()
        log.info("registered existing queue manager %s from %s", self.control.name, where.data_path)
        return Prepared.REGISTERED

    def _make_parents(self) -> None:
        """crtmqm does not make missing parents of -md/-ld: make them as MQ's user, mode 2775."""
        if self.mounted is not None and not self.mounted():
            raise PrepareError(f"{self.control.storage_path} is not mounted: nothing is created on the local disk "
                               "under its mount point")
        for path in (self.control.data_parent, self.control.log_parent):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                raise PrepareError(f"cannot look at {path}: {exc.strerror}") from None
            if st is not None and stat.S_ISLNK(st.st_mode):  # planted by a writer of the shared storage?
                raise PrepareError(f"refusing {path}: it is a symbolic link (the queue manager's data must be a "
                                   "real directory on the shared storage)")
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            try:
                os.makedirs(path, exist_ok=True)
                if self.chown_to is not None:
                    os.chown(path, *self.chown_to)
                os.chmod(path, PARENT_MODE)
            except OSError as exc:
                raise PrepareError(f"cannot create {path} for the queue manager (mode 2775, as the MQ user): "
                                   f"{exc.strerror}") from None
            log.info("created %s (mode %04o) for the queue manager", path, PARENT_MODE)


def shared_root_problem(root: str, storage: str, multi_instance: bool) -> str:
    """Why MQ's root may not be on the shared storage ('' when it may): a multi-instance pair would share
    mqs.ini, MQ's system error logs, FDC files and IPC sockets. IBM's multi-instance recipe keeps /var/mqm local to
    each host and puts only the queue manager's data and logs on the shared file system (reference: Files)."""
    if not multi_instance:
        return ""  # a single instance may keep its root on EFS (IBM's original EFS proof of concept did)
    root_n, storage_n = os.path.normpath(root), os.path.normpath(storage)
    if os.path.commonpath([root_n, storage_n]) != storage_n:
        return ""
    return (f"multi_instance with MQ's root {root} on the shared storage {storage}: both hosts would share mqs.ini, "
            "MQ's error logs and FDC files; keep MQ's root (/var/mqm) on each host's own disk and the queue "
            "manager's data and logs below storage.path (e.g. /MQHA/qmgrs and /MQHA/logs), as IBM's "
            "multi-instance recipe does")


def find_data_directories(parent: str, directory: str) -> List[str]:
    """``directory`` and its ``.NNN`` variants in ``parent`` that hold a qm.ini (never through a link)."""
    pattern = re.compile(re.escape(directory) + r"(\.\d{3})?")
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return []
    found = []
    for name in sorted(names):
        if not pattern.fullmatch(name):
            continue
        try:
            st = os.lstat(os.path.join(parent, name, "qm.ini"))
            if stat.S_ISREG(st.st_mode) and stat.S_ISDIR(os.lstat(os.path.join(parent, name)).st_mode):
                found.append(name)
        except OSError:
            continue
    return found


class CreateLock:
    """An exclusive POSIX lock on ``.mqguard/create.lock`` on EFS (NFSv4 locks are cluster-wide).

    Opened like every file in the state directory: relative to its fd, never
    through a link, a regular file only.
    """

    def __init__(self, storage_path: str, timeout: float, owners: FrozenSet[int],
                 sleep: Callable[[float], None] = time.sleep, mount_point: bool = False) -> None:
        self.storage_path = storage_path
        self.path = create_lock_path(storage_path)
        self.timeout = timeout
        self.owners = owners
        self.sleep = sleep
        self.mount_point = mount_point  # only on the mounted file system, never under a bare mount point
        self.fd = -1

    def __enter__(self) -> CreateLock:
        try:
            dir_fd = open_state_dir(self.storage_path, self.owners, mount_point=self.mount_point)
            try:
                self.fd = open_regular(dir_fd, CREATE_LOCK)
            finally:
                os.close(dir_fd)
        except UnsafePath as exc:
            raise LockUnusable(f"create lock: {exc.strerror}") from None
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


def preparation_for(qm_create: bool, lock_timeout: float, control: MqControl,
                    mounted: Optional[Callable[[], bool]] = None) -> Preparation:
    """The preparation for ``control``'s queue manager, as whoever runs it (root makes parents for the MQ user)."""
    run_as = control.qm.run_as
    chown_to = None
    if run_as and os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam(run_as)
        chown_to = (pw.pw_uid, pw.pw_gid)
    return Preparation(control, qm_create, lock_timeout, allowed_owners(run_as), chown_to, mounted)
