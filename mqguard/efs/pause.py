"""The maintenance pause, stored on EFS beside the queue manager's data (docs/operating.md).

``<storage.path>/.mqguard/pause`` holds one JSON record: until, reason, by and
since (wall-clock seconds). Being on the shared file system, a pause holds for
both hosts of a multi-instance pair, for a replacement instance and across
restarts and reboots. It is written atomically (a temporary file renamed over
it, all relative to the state directory's fd, never through a link) and read
on a background thread so that a hung EFS never blocks the loop: the last
value read stays in force until a read succeeds.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import pwd
import socket
import stat
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, FrozenSet, Optional

from mqguard.base.offloop import OneAtATime
from mqguard.base.untrusted import load_json, loggable
from mqguard.efs.statedir import UnsafePath, create_exclusive, open_state_dir

log = logging.getLogger(__name__)

PAUSE_FILE = "pause"
MAX_RECORD = 4096
MAX_REASON = 500
EARLIEST = 946684800.0  # 2000-01-01: no pause was written before mqguard existed
LONGEST = 7 * 86400.0  # [control] pause_max's own upper bound: no record may ask for more
CLOCK_SKEW = 86400.0  # another host's clock may be this far ahead


@dataclass(frozen=True)
class Pause:
    until: float  # wall-clock seconds
    reason: str
    by: str
    since: float

    def active(self, wall_now: float) -> bool:
        return wall_now < self.until

    def to_json(self) -> str:
        return json.dumps({"version": 1, **asdict(self)})


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def parse(text: str, now: Optional[float] = None) -> Pause:
    """A pause record; ValueError for anything else (it then counts as no pause).

    Any host that mounts the EFS can write it, so every field is bounded here,
    at read time: finite numbers (JSON's Infinity/NaN refused), ``since`` not
    in the future (beyond clock skew), ``until`` no further ahead than the
    longest pause any configuration allows. What passes can be formatted.
    """
    now = time.time() if now is None else now
    doc = load_json(text, parse_constant=_no_constant)
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ValueError("not a version 1 pause record")
    until, since = doc.get("until"), doc.get("since")
    reason, by = doc.get("reason", ""), doc.get("by", "")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (until, since)):
        raise ValueError("until and since must be numbers")
    if not all(math.isfinite(v) for v in (until, since)):  # type: ignore[arg-type]
        raise ValueError("until and since must be finite")
    if not EARLIEST <= since <= now + CLOCK_SKEW:  # type: ignore[operator]
        raise ValueError(f"since {since!r} is outside {EARLIEST:.0f}..now + 1 day")
    if not EARLIEST <= until <= now + LONGEST + CLOCK_SKEW:  # type: ignore[operator]
        raise ValueError(f"until {until!r} is further ahead than any pause may last ({LONGEST / 86400:.0f} days)")
    if not isinstance(reason, str) or not isinstance(by, str):
        raise ValueError("reason and by must be strings")
    return Pause(float(until), loggable(reason)[:MAX_REASON], loggable(by)[:200], float(since))  # type: ignore[arg-type]


def parse_reason(text: str) -> str:
    return loggable(text)[:MAX_REASON]


def who(uid: int) -> str:
    """"name (uid N) on host" for the record's ``by``."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"{name} (uid {uid}) on {socket.gethostname()}"


def write(storage_path: str, owners: FrozenSet[int], pause: Pause, mount_point: bool = False) -> None:
    """Write the record (``mount_point``: only onto the mounted file system, see statedir.open_state_dir)."""
    dir_fd = open_state_dir(storage_path, owners, mount_point=mount_point)
    tmp = f".{PAUSE_FILE}.{socket.gethostname()}.{os.getpid()}"
    try:
        fd = create_exclusive(dir_fd, tmp, 0o644)  # never through a link planted under the name
        try:
            os.write(fd, pause.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, PAUSE_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # atomic: readers see old or new
    finally:
        os.close(dir_fd)


def clear(storage_path: str, owners: FrozenSet[int], mount_point: bool = False) -> bool:
    """Remove the record; False when there was none."""
    try:
        dir_fd = open_state_dir(storage_path, owners, mount_point=mount_point, create=False)
    except FileNotFoundError:
        return False
    try:
        os.unlink(PAUSE_FILE, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(dir_fd)


def read(storage_path: str, owners: FrozenSet[int]) -> Optional[Pause]:
    """The record, None when there is none; ValueError when it is not one; OSError from the file system.
    A reader makes nothing: no .mqguard, no record."""
    try:
        dir_fd = open_state_dir(storage_path, owners, create=False)
    except FileNotFoundError:
        return None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(PAUSE_FILE, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ValueError("it is a symbolic link (refused)") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"it is not a regular file ({stat.filemode(st.st_mode)}; refused)")
            if st.st_uid not in owners:
                raise ValueError(f"owned by uid {st.st_uid}, not root or the MQ user")
            data = os.read(fd, MAX_RECORD + 1)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    if len(data) > MAX_RECORD:
        raise ValueError(f"larger than {MAX_RECORD} bytes")
    return parse(data.decode("utf-8", errors="replace"))


def first_sight_bound(pause: Pause, first_seen: float, pause_max: float) -> Pause:
    """A pause holds at most pause_max after this host first saw it, whatever its record says."""
    limit = first_seen + pause_max
    return pause if pause.until <= limit else dataclasses.replace(pause, until=limit)


class PauseWatch:
    """Reads the record in the background; ``current`` is the last value known (never blocks)."""

    def __init__(self, storage_path: str, owners: FrozenSet[int], on_change: Callable[[], None],
                 reader: Callable[[str, FrozenSet[int]], Optional[Pause]] = read, pause_max: float = LONGEST,
                 wall: Callable[[], float] = time.time) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.on_change = on_change
        self.reader = reader
        self.pause_max = pause_max
        self.wall = wall
        self._lock = threading.Lock()
        self._current: Optional[Pause] = None
        self._seen: Optional[Pause] = None  # the record as read, and when this host first saw it
        self._first_seen = 0.0
        self._reads = OneAtATime[None]("pause read")  # a hung EFS: at most one read stuck
        self._bad = ""  # the last complaint about the record, logged once

    @property
    def current(self) -> Optional[Pause]:
        with self._lock:
            return self._current

    def set(self, pause: Optional[Pause]) -> None:
        """What this host just wrote (or cleared): in force at once."""
        with self._lock:
            changed = self._current != pause
            self._current = pause
        if changed:
            self.on_change()

    def refresh(self) -> None:
        """Start a read unless one is still outstanding (a hung EFS: at most one thread stuck)."""
        self._reads.start(self._read)

    def _read(self) -> None:
        started = time.monotonic()
        try:
            pause = self.reader(self.storage_path, self.owners)
        except (OSError, ValueError) as exc:
            if isinstance(exc, (ValueError, UnsafePath)):
                complaint = f"ignoring the pause record in {self.storage_path}/.mqguard: {exc}"
                if complaint != self._bad:
                    self._bad = complaint
                    log.warning("%s", complaint)
                self.set(None)
            # an unreadable EFS: keep the last known value
            log.debug("pause read failed after %.2fs: %s", time.monotonic() - started, exc)
            return
        self._bad = ""
        if pause is not None:
            if pause != self._seen:
                self._seen, self._first_seen = pause, self.wall()
            pause = first_sight_bound(pause, self._first_seen, self.pause_max)
        self.set(pause)
