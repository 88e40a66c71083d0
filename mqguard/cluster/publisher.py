"""Keeping this host's record on the shared storage current, off the loop.

The loop offers its snapshot every cycle (cheap: a few fields under a lock); one thread writes the record when
something a person would see changed (at most every ``MIN_GAP`` seconds) and at least every ``REFRESH`` seconds,
so ``last_seen`` tells a live host from a hung or gone one. A write is a new file renamed over the old one: a
reader never sees half a record, and a planted link or hard link at the name is replaced, never written through.
A hung EFS blocks this thread only.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import uuid
from dataclasses import replace
from typing import Callable, FrozenSet, Optional, Tuple

from mqguard.cluster.records import HOSTS_DIR, HostRecord, role_of
from mqguard.efs.statedir import create_exclusive, open_sub_dir
from mqguard.history.events import safe_host

log = logging.getLogger(__name__)

MIN_GAP = 2.0  # seconds between two writes, whatever changes
REFRESH = 10.0  # seconds between writes when nothing changes (the stale threshold is at least 33 s)
Identity = Callable[[], Tuple[str, str, str]]  # (instance id, availability zone, private address), off the loop


class HostPublisher:
    def __init__(self, storage_path: str, owners: FrozenSet[int], wall: Callable[[], float],
                 monotonic: Callable[[], float], qmgr: str, version: str, listen: Optional[Tuple[str, int]],
                 identity: Optional[Identity] = None, mq_level: Callable[[], Optional[str]] = lambda: None,
                 mounted: Optional[Callable[[], bool]] = None, mount_point: bool = False,
                 host: Optional[str] = None) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.wall = wall
        self.monotonic = monotonic
        self.listen = listen
        self._identity = identity
        self._mq_level = mq_level
        self._mounted = mounted or (lambda: True)
        self._mount_point = mount_point
        hostname = host or socket.gethostname()
        self._base = HostRecord(host=safe_host(hostname), instance_id="", az="", qmgr=qmgr, state="starting",
                                role="none", qmgr_status=None, paused_until=None, last_seen=0.0, version=version,
                                mq_level=None, storage_ok=False, storage_detail="", address="", poll_interval=1.0)
        self._offered: Optional[HostRecord] = None
        self._written: Optional[HostRecord] = None
        self._written_at: Optional[float] = None
        self._cv = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._force = False
        self._busy = False
        self._last_error = ""
        self._failed = False
        self.writes = 0

    @property
    def key(self) -> str:
        """This host's record's name (its instance id once IMDS told it, else the host name)."""
        with self._cv:
            return self._base.key

    def offer(self, state: str, qmgr_status: Optional[str], paused_until: Optional[float], storage_ok: bool,
              storage_detail: str, poll_interval: float) -> None:
        """From the loop, every cycle; never blocks."""
        with self._cv:
            self._offered = replace(self._base, state=state, role=role_of(qmgr_status), qmgr_status=qmgr_status,
                                    paused_until=paused_until, storage_ok=storage_ok,
                                    storage_detail=storage_detail[:200], poll_interval=poll_interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="host-record", daemon=True)
                self._thread.start()
            self._cv.notify()

    def flush(self, timeout: float) -> bool:
        """The last offer written within ``timeout`` (at shutdown; False when the storage did not take it)."""
        with self._cv:
            self._force = True  # a changed record is written now, without waiting MIN_GAP
            self._cv.notify_all()
            try:
                return self._cv.wait_for(lambda: not self._busy and not self._failed and not self._due(force=True),
                                         timeout)
            finally:
                self._force = False

    # ------------------------------------------------------------------ the writer thread
    def _due(self, force: bool = False) -> bool:
        """Whether to write now. ``force`` (shutdown) writes a changed record without waiting MIN_GAP; a failed
        write is never retried sooner than MIN_GAP (a storage that fails fast must not spin this thread)."""
        offered = self._offered
        if offered is None:
            return False
        if self._written_at is None:
            return True
        since = self.monotonic() - self._written_at
        if self._written is None or self._failed:
            return since >= MIN_GAP
        if since >= REFRESH:
            return True
        changed = _visible(offered) != _visible(self._written)
        return changed and (force or since >= MIN_GAP)

    def _wait_time(self) -> float:
        if self._written_at is None:
            return REFRESH
        return max(0.05, min(REFRESH, MIN_GAP) - (self.monotonic() - self._written_at))

    def _run(self) -> None:
        self._resolve_identity()
        while True:
            with self._cv:
                while not self._due(force=self._force):
                    self._cv.wait(self._wait_time())
                record = self._offered or self._base
                self._busy = True
            record = replace(record, last_seen=self.wall(), mq_level=self._level())
            try:
                self._write(record)
            except Exception as exc:  # OSError from EFS, UnsafePath from a planted link: tried again later
                text = str(exc)
                if text != self._last_error:
                    log.warning("host record not written to %s/.mqguard/%s: %s", self.storage_path, HOSTS_DIR, text)
                    self._last_error = text
                written = False
            else:
                self._last_error = ""
                written = True
            with self._cv:
                self._failed = not written
                if written:
                    self._written = record
                    self.writes += 1
                self._written_at = self.monotonic()  # a failed write is retried after MIN_GAP, not in a spin
                self._busy = False
                self._cv.notify_all()

    def _level(self) -> Optional[str]:
        try:
            return self._mq_level()
        except Exception:
            return None

    def _resolve_identity(self) -> None:
        iid, az, address = "", "", ""
        if self._identity is not None:
            try:
                iid, az, address = self._identity()
            except Exception as exc:  # IMDS down: the host name alone still tells hosts apart
                log.debug("host record: no instance identity (%s)", exc)
        host, port = self.listen or ("", 0)
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: peers need one address
            host = address or (self._base.host if self.listen else "")
        with self._cv:
            where = f"[{host}]" if ":" in host else host
            self._base = replace(self._base, instance_id=iid, az=az,
                                 address=f"{where}:{port}" if self.listen and host else "")
            if self._offered is not None:
                self._offered = replace(self._offered, instance_id=iid, az=az, address=self._base.address)

    def _write(self, record: HostRecord) -> None:
        if not self._mounted():  # the local disk under the mount point is not the shared storage
            raise OSError(errno.ENOENT, f"{self.storage_path} is not mounted")
        dfd = open_sub_dir(self.storage_path, self.owners, HOSTS_DIR, mount_point=self._mount_point)
        name = f"{record.key}.json"
        temp = f".{record.key}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            fd = create_exclusive(dfd, temp, 0o644)
            try:
                data = (record.line() + "\n").encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)  # replaces a planted link itself, never its target
        except BaseException:
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
            raise
        finally:
            os.close(dfd)


def _visible(r: HostRecord) -> Tuple[object, ...]:
    """What a person reading ``mqguard list`` would see change (not last_seen)."""
    return (r.state, r.role, r.qmgr_status, r.paused_until, r.storage_ok, r.instance_id, r.address)
