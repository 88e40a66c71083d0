"""Appending this host's events to ``<storage.path>/.mqguard/history/<host>.jsonl``.

The loop only puts an event on a bounded queue; one writer thread appends it. A hung
EFS blocks that thread, never the loop: the queue fills, and what does not fit is
dropped and counted (``mqguard_history_dropped_total``). Files are opened relative to
the state directory without following links, and rotated at ``max_bytes`` (one older
generation kept), so a host's history is bounded on disk.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import socket
import stat
import threading
from typing import Callable, Deque, FrozenSet, List, Optional, Tuple

from mqguard.efs.statedir import UnsafePath, open_sub_dir
from mqguard.history.events import EVENTS, Event, safe_host

log = logging.getLogger(__name__)

HISTORY_DIR = "history"
MAX_BYTES = 1024 * 1024  # per generation; two generations per host
QUEUE_MAX = 256  # events waiting for the writer; more while EFS hangs are dropped
Identity = Callable[[], Tuple[str, str]]  # (instance id, availability zone), asked once, off the loop
Pending = Tuple[float, str, str]  # (wall time, event, detail) as the loop recorded it


def open_history_dir(storage_path: str, owners: FrozenSet[int], create: bool = True, mount_point: bool = False) -> int:
    """A directory fd for ``.mqguard/history`` (created 0755 when ``create``), checked like the state directory;
    FileNotFoundError when it does not exist and ``create`` is false."""
    return open_sub_dir(storage_path, owners, HISTORY_DIR, create=create, mount_point=mount_point)


class HistoryWriter:
    def __init__(self, storage_path: str, owners: FrozenSet[int], wall: Callable[[], float],
                 dropped: Callable[[int], None], failed: Callable[[], None], identity: Optional[Identity] = None,
                 host: Optional[str] = None, max_bytes: int = MAX_BYTES, queue_max: int = QUEUE_MAX,
                 after_write: Callable[[List[Event]], None] = lambda batch: None,
                 written: Callable[[int], None] = lambda n: None,
                 mounted: Optional[Callable[[], bool]] = None, mount_point: bool = False) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.wall = wall
        self.hostname = host or socket.gethostname()
        self.host = safe_host(self.hostname)  # the file's name: the instance id once IMDS told it
        self.max_bytes = max_bytes
        self._dropped = dropped
        self._failed = failed
        self._identity = identity
        self._after_write = after_write
        self._written = written
        self._mounted = mounted or (lambda: True)  # asked right before each write: never under a bare mount point
        self._mount_point = mount_point  # and .mqguard only made through the mounted root's descriptor (no race)
        self._instance = ("", "")
        self._queue: Deque[Pending] = collections.deque()
        self._queue_max = queue_max
        self._cv = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._last_error = ""
        self._busy = False  # the writer thread holds a batch (flush waits for it)
        self.written = 0

    def record(self, event: str, detail: str = "", at: Optional[float] = None) -> None:
        """Queue one event; never blocks: a hung EFS loses events, never the daemon (docs/operating.md,
        "Failover evidence")."""
        if event not in EVENTS:
            raise ValueError(f"unknown history event {event!r}")
        with self._cv:
            if len(self._queue) >= self._queue_max:
                self._dropped(1)
                return
            self._queue.append((self.wall() if at is None else at, event, detail[:300]))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
                self._thread.start()
            self._cv.notify()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the queue to be written (at shutdown); False if EFS did not take it."""
        with self._cv:
            self._cv.notify()
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        if self._identity is not None:  # on this thread: IMDS may be slow, the loop must not wait for it
            try:
                self._instance = self._identity()
            except Exception as exc:  # IMDS down: the host name alone still tells hosts apart
                log.debug("history: no instance identity (%s)", exc)
            if self._instance[0]:
                self.host = safe_host(self._instance[0])
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._queue))
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            events = [Event(t, self.hostname, name, detail, *self._instance) for t, name, detail in batch]
            done: List[Event] = []  # appended so far: a batch that fails half-way loses only the rest
            try:
                self._append(events, done)
            except Exception as exc:  # OSError from EFS, UnsafePath from a planted link: the rest are lost
                self._failed()
                self._dropped(len(batch) - len(done))
                text = str(exc)
                if text != self._last_error:
                    log.warning("history: %d event(s) not written to %s/.mqguard/%s: %s", len(batch) - len(done),
                                self.storage_path, HISTORY_DIR, text)
                    self._last_error = text
            else:
                self._last_error = ""
            if done:
                self.written += len(done)
                self._written(len(done))
                try:
                    self._after_write(done)
                except Exception as exc:  # a summary is a nicety: it never stops the writer
                    log.debug("history: after-write summary failed: %s", exc)
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def _append(self, batch: List[Event], done: List[Event]) -> None:
        """Append ``batch``; each event written is added to ``done`` (what a failure half-way did not lose)."""
        if not self._mounted():  # the local disk under the mount point is not the shared history
            raise OSError(errno.ENOENT, f"{self.storage_path} is not mounted")
        dfd = open_history_dir(self.storage_path, self.owners, mount_point=self._mount_point)
        name = f"{self.host}.jsonl"
        fd = -1
        try:
            fd = self._open(dfd, name)
            size = os.fstat(fd).st_size
            for ev in batch:
                data = ev.line().encode()
                if size + len(data) > self.max_bytes and size > 0:
                    os.close(fd)
                    fd = -1
                    os.rename(name, name + ".1", src_dir_fd=dfd, dst_dir_fd=dfd)  # one older generation kept
                    fd, size = self._open(dfd, name), 0
                view = memoryview(data)
                while view:  # a short write is finished, never taken for the whole line
                    view = view[os.write(fd, view):]
                size += len(data)
                done.append(ev)
        finally:
            if fd >= 0:
                os.close(fd)
            os.close(dfd)

    @staticmethod
    def _open(dfd: int, name: str) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o644, dir_fd=dfd)
        except OSError as exc:
            what = "it is a symbolic link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
            raise UnsafePath(exc.errno or errno.EPERM, f"refusing history/{name}: {what}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(fd)
            what = "it is not a regular file" if not stat.S_ISREG(st.st_mode) else \
                f"it has {st.st_nlink} links (a hard link to another file, e.g. qm.ini)"
            raise UnsafePath(errno.EPERM, f"refusing history/{name}: {what}")
        return fd
