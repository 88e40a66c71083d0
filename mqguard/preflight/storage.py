"""``mqguard preflight --storage``: the mounted storage measured the way IBM MQ uses it.

MQ's recovery log is written in 4 KiB pages, each made durable before the commit that needs it returns (a forced
write); a multi-instance pair lives on ``fcntl`` locks; queue files and the log's extents are created, written,
synced, renamed and deleted. Each is measured for a share of ``--seconds`` on files of the check's own, in a
directory of its own under ``<storage.path>/.mqguard/storage-check/`` (opened like the rest of ``.mqguard``:
no symbolic link followed), never touching MQ's files, at most ``MAX_BYTES`` written, and removed on every exit
path, an interrupt included.

Next to a live queue manager it competes with MQ for the file system for those seconds: the log writes of one
and of ``WRITERS`` concurrent writers, that is ``WRITERS + 1`` synchronous 4 KiB writes in flight at most.

The estimates use one documented model (docs/real-mq.md, "Is my EFS fast enough?"): a committing application
waits for one forced log write per commit, so one application commits at most ``1 / p50`` persistent messages
per second; several applications share the log's writes (MQ groups their commits), which the concurrent writers'
rate approximates; a log replay reads the log and rewrites what it touched, which the read-back and the
concurrent write rate bound.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import threading
import time
import uuid
from typing import Callable, FrozenSet, List, Optional

from mqguard.efs.statedir import open_sub_dir
from mqguard.preflight.figures import (  # the command and the tests read them here too
    FAIL,
    MAX_SAMPLES,
    PAGE,
    PASS,
    THRESHOLDS,
    WARN,
    WRITERS,
    Check,
    Results,
    Series,
    checks_for,
    estimate,
    render,
    verdict,
)
from mqguard.preflight.stall import Liveness

__all__ = ["FAIL", "MAX_SAMPLES", "PAGE", "PASS", "THRESHOLDS", "WARN", "WRITERS", "Check", "Results", "Series",
           "StorageCheck", "checks_for", "estimate", "render", "verdict"]

CHECK_DIR = "storage-check"
# An operation that has not returned for this long means the storage stopped answering (a hung EFS: NFS's hard
# mount retries for ever); the command says so and exits instead of hanging. EFS mounts retry after 60 s
# (timeo=600), so a healthy but slow answer comes back well before this.
STALL_SECONDS = 30.0
MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SECONDS = 30.0
MAX_SECONDS = 300.0

# The phases' shares of --seconds: the log's pattern first, the rest after it.
SHARES = {"log": 0.35, "concurrent": 0.25, "locks": 0.15, "metadata": 0.2, "read": 0.05}



class Budget:
    """Time and bytes for the whole check; each phase gets its share of the time."""

    def __init__(self, seconds: float, max_bytes: int, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self.written = 0
        self.began = clock()

    def left_bytes(self) -> int:
        return self.max_bytes - self.written

    def add(self, n: int) -> None:
        self.written += n


def _open_new(dfd: int, name: str) -> int:
    return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)


class StorageCheck:
    """One run in one directory of its own; ``run`` measures, ``close`` removes everything it made."""

    def __init__(self, storage_path: str, owners: FrozenSet[int], seconds: float = DEFAULT_SECONDS,
                 max_bytes: int = MAX_BYTES, clock: Callable[[], float] = time.monotonic,
                 progress: Callable[[str, float], None] = lambda phase, left: None,
                 mount_point: bool = True, writers: int = WRITERS, liveness: Optional[Liveness] = None) -> None:
        self.storage_path = storage_path
        self.live = liveness or Liveness(clock)
        shown = progress

        def progress_and_answer(phase: str, left: float) -> None:
            self.live.answer(phase)
            shown(phase, left)

        progress = progress_and_answer
        self.owners = owners
        self.seconds = min(max(seconds, 1.0), MAX_SECONDS)
        self.budget = Budget(self.seconds, max_bytes, clock)
        self.clock = clock
        self.progress = progress
        self.progress_only = shown  # the concurrent phase's writers answer for themselves
        self.writers = writers
        self.name = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        parent = open_sub_dir(storage_path, owners, CHECK_DIR, create=True, mount_point=mount_point)
        try:
            os.mkdir(self.name, 0o700, dir_fd=parent)
            self.dfd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except BaseException:
            os.close(parent)
            raise
        self.parent = parent
        self.files: List[str] = []

    # ------------------------------------------------------------------ the phases
    def run(self) -> Results:
        r = Results()
        start = self.clock()
        self.live.answer("log writes, one writer")
        self._log(r)
        self.live.answer("reading the log back")
        self._read(r)
        self.live.answer(f"log writes, {self.writers} writers at once")
        self._concurrent(r)
        self.live.answer("file locks")
        self._locks(r)
        self.live.answer("metadata (create, write, fsync, rename, delete)")
        self._metadata(r)
        self.live.answer("removing the check's files")
        r.bytes_written = self.budget.written
        r.seconds = self.clock() - start
        return r

    def _deadline(self, phase: str) -> float:
        return self.clock() + self.seconds * SHARES[phase]

    def _new_file(self, name: str) -> int:
        self.files.append(name)
        return _open_new(self.dfd, name)

    def _log(self, r: Results) -> None:
        """One writer: 4 KiB appended, then fdatasync, before the next (what fio --fdatasync=1 does)."""
        end = self._deadline("log")
        fd = self._new_file("log-1")
        page = os.urandom(PAGE)
        began = self.clock()
        try:
            while self.clock() < end:
                if self.budget.left_bytes() < PAGE:
                    r.stopped_early = f"the {self.budget.max_bytes // (1024 * 1024)} MiB written budget"
                    break
                t0 = self.clock()
                os.write(fd, page)
                os.fdatasync(fd)
                r.log.add(self.clock() - t0)
                self.budget.add(PAGE)
                self.progress("log writes, one writer", end - self.clock())
        finally:
            r.log.elapsed = self.clock() - began
            os.close(fd)

    def _read(self, r: Results) -> None:
        """The log read back in 1 MiB reads (a replay reads the log), its pages dropped from the cache first."""
        end = self._deadline("read")
        fd = os.open("log-1", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dfd)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            done, t0 = 0, self.clock()
            while self.clock() < end:
                chunk = os.read(fd, 1024 * 1024)
                if not chunk:
                    break
                done += len(chunk)
                self.live.answer("reading the log back")
            took = self.clock() - t0
            r.read_bytes_per_second = done / took if took > 0 and done else 0.0
        finally:
            os.close(fd)

    def _concurrent(self, r: Results) -> None:
        """Several writers at once, each on its own file (committing applications sharing the file system)."""
        end = self._deadline("concurrent")
        lock = threading.Lock()
        page = os.urandom(PAGE)
        fds = [self._new_file(f"log-c{i}") for i in range(self.writers)]
        errors: List[BaseException] = []

        def writer(fd: int) -> None:
            try:
                while self.clock() < end:
                    with lock:
                        if self.budget.left_bytes() < PAGE:
                            return
                        self.budget.add(PAGE)
                    t0 = self.clock()
                    os.write(fd, page)
                    os.fdatasync(fd)
                    took = self.clock() - t0
                    with lock:
                        r.concurrent.add(took)
                    self.live.answer(f"log writes, {self.writers} writers at once")
            except BaseException as exc:  # reported by the caller
                errors.append(exc)

        began = self.clock()
        threads = [threading.Thread(target=writer, args=(fd,), name="storage-writer", daemon=True) for fd in fds]
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                self.progress_only(f"log writes, {self.writers} writers at once", end - self.clock())
                for t in threads:
                    t.join(0.2)
        finally:
            r.concurrent.elapsed = self.clock() - began
            for fd in fds:
                os.close(fd)
        if errors:
            raise errors[0]

    def _locks(self, r: Results) -> None:
        """fcntl lock and unlock of a byte range (what MQ's file locks and a multi-instance pair rely on)."""
        end = self._deadline("locks")
        fd = self._new_file("lock")
        began = self.clock()
        try:
            while self.clock() < end:
                t0 = self.clock()
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(fd, fcntl.LOCK_UN)
                r.locks.add(self.clock() - t0)
                self.progress("file locks", end - self.clock())
        finally:
            r.locks.elapsed = self.clock() - began
            os.close(fd)

    def _metadata(self, r: Results) -> None:
        """A small file created, written, synced, renamed and deleted: one operation."""
        end = self._deadline("metadata")
        began = self.clock()
        n = 0
        try:
            while self.clock() < end:
                a, b = f"meta-{n}", f"meta-{n}.renamed"
                t0 = self.clock()
                fd = _open_new(self.dfd, a)
                try:
                    os.write(fd, b"x" * 512)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(a, b, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
                os.unlink(b, dir_fd=self.dfd)
                r.metadata.add(self.clock() - t0)
                n += 1
                self.progress("metadata (create, write, fsync, rename, delete)", end - self.clock())
        finally:
            r.metadata.elapsed = self.clock() - began

    # ------------------------------------------------------------------ cleanup
    def close(self) -> None:
        """Remove every file this run made and its directory (whatever state it was left in)."""
        try:
            for entry in os.listdir(self.dfd):
                try:
                    os.unlink(entry, dir_fd=self.dfd)
                except OSError:
                    pass
        finally:
            os.close(self.dfd)
            try:
                os.rmdir(self.name, dir_fd=self.parent)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            finally:
                os.close(self.parent)
