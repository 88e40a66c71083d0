"""The EFS mount: is it mounted with the right type, and does it answer?

Mount detection reads /proc/self/mountinfo only (never stat()s the mount point,
which would hang on a dead NFS server). The probe runs on its own thread so a
hung file system costs one stuck thread, never a stuck daemon, and a new probe
is not started while the previous one is still stuck.

The storage verdict is about what MQ needs: a file with an unpredictable name
is created exclusively, written, fsynced, read back and removed in the queue
manager's data and log directories (their parents until they exist). mqguard's
own ``.mqguard`` is checked in the same pass but reported apart
(``state_dir_ok``): a broken or hostile ``.mqguard`` on the shared EFS must be
loud, never a reason to replace a host whose queue manager is fine (docs/reference.md,
/status state_dir_ok).
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from dataclasses import dataclass
from typing import Callable, FrozenSet, List, Optional, Sequence, Tuple

from mqguard.base.offloop import OneAtATime
from mqguard.efs.statedir import STATE_DIR, UnsafePath, allowed_owners, open_state_dir

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> List[MountEntry]:
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        entries.append(MountEntry(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return entries


def find_mount(path: str, mountinfo: str = MOUNTINFO) -> Optional[MountEntry]:
    """The mount whose mount point is exactly ``path`` (the top one if stacked)."""
    target = os.path.normpath(path)
    with open(mountinfo, encoding="utf-8", errors="replace") as fh:
        entries = parse_mountinfo(fh.read())
    found = None
    for entry in entries:
        if entry.mount_point == target:
            found = entry
    return found


@dataclass(frozen=True)
class MountReading:
    ok: bool
    detail: str
    fstype: str = ""


def check_mount(path: str, fstypes: Sequence[str], mountinfo: str = MOUNTINFO) -> MountReading:
    try:
        entry = find_mount(path, mountinfo)
    except OSError as exc:
        return MountReading(False, f"cannot read {mountinfo}: {exc}")
    if entry is None:
        return MountReading(False, f"{path} is not a mount point")
    if entry.fstype not in fstypes:
        return MountReading(
            False, f"{path} is mounted as {entry.fstype}, expected {'/'.join(fstypes)}", entry.fstype
        )
    # The mount source (EFS id, mount target address) stays out: the detail is served on /status.
    return MountReading(True, f"{path} mounted ({entry.fstype})", entry.fstype)


def mount_check(path: str, fstypes: Sequence[str], mountinfo: str = MOUNTINFO) -> Callable[[], bool]:
    """``check_mount`` as a question to ask again later (right before writing, on another thread)."""
    return lambda: check_mount(path, fstypes, mountinfo).ok


@dataclass(frozen=True)
class ProbeReading:
    ok: bool  # what MQ needs: its data and log directories take a write, fsync and read in time
    seconds: Optional[float]  # None when it did not finish
    detail: str
    state_dir_ok: Optional[bool] = None  # mqguard's own .mqguard (None: not known this time)
    state_dir_detail: str = ""


PROBE_PREFIX = ".mqguard-probe-"


def _write_probe(dir_fd: int) -> None:
    """create / write / fsync / read back / unlink a small file with an unpredictable name, never through a link."""
    name = PROBE_PREFIX + secrets.token_hex(8)
    payload = f"mqguard {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, payload)
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        back = os.read(fd, len(payload) + 1)
    finally:
        os.close(fd)
        os.unlink(name, dir_fd=dir_fd)
    if back != payload:
        raise OSError(f"read back {len(back)} bytes that differ from what was written")


def probe_targets(path: str, dirs: Sequence[str], own: Sequence[str] = ()) -> List[str]:
    """Where the probe writes: the queue manager's own data and log directories once they are known (what MQ
    itself writes: a read-only parent that a running queue manager never writes is no reason to report it), else
    the data and log parents that exist, else the storage path itself (before a create)."""
    found = [d for d in own if os.path.isdir(d)]
    return found or [d for d in dirs if os.path.isdir(d)] or [path]


def _probe_mq(targets: Sequence[str]) -> None:
    for target in targets:
        dir_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _write_probe(dir_fd)
        finally:
            os.close(dir_fd)


def _probe_state_dir(path: str, owners: FrozenSet[int], mount_point: bool = False,
                     create: bool = True) -> Tuple[bool, str]:
    """Is <path>/.mqguard usable (a real directory, right owner and mode, writable)? Never MQ's verdict."""
    try:
        dir_fd = open_state_dir(path, owners, mount_point=mount_point, create=create)
        try:
            _write_probe(dir_fd)
        finally:
            os.close(dir_fd)
    except FileNotFoundError:
        return True, f"{os.path.join(path, STATE_DIR)} not made yet (mqguard run makes it)"
    except UnsafePath as exc:
        return False, str(exc.strerror)
    except OSError as exc:
        return False, f"{os.path.join(path, STATE_DIR)} is not writable: {exc.strerror or exc}"
    return True, f"{os.path.join(path, STATE_DIR)} ok"


def _hint(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        # mqguard.service has ProtectSystem=strict: paths it writes must be listed
        return " (under systemd: add the path to ReadWritePaths= with `systemctl edit mqguard`)"
    return ""


class StorageProber:
    """Runs probes on a helper thread; at most one is ever outstanding."""

    def __init__(self, path: str, owners: Optional[FrozenSet[int]] = None, dirs: Sequence[str] = (),
                 mounted: Optional[Callable[[], bool]] = None, mount_point: bool = False,
                 create_state_dir: bool = True, own_dirs: Callable[[], Sequence[str]] = lambda: ()) -> None:
        self.path = path
        self.mount_point = mount_point  # .mqguard made only through the mounted root's descriptor
        self.create_state_dir = create_state_dir  # False: `mqguard check` makes nothing, it only looks
        self.mounted = mounted  # asked again on the probe's thread, right before it writes: never write under an
        # unmounted mount point (it would be the local disk, and the next mount would find a non-empty directory)
        self.owners = owners if owners is not None else allowed_owners()
        self.dirs = tuple(dirs)  # MQ's directories to probe (data and log parents); the path until they exist
        self.own_dirs = own_dirs  # the queue manager's own data and log directories, once MQ has said where
        self._runs = OneAtATime[None]("storage probe")
        self._result: Optional[Tuple[bool, float, str, Optional[bool], str]] = None

    def probe(self, timeout: float) -> ProbeReading:
        stuck = self._runs.stuck_for
        if stuck is not None:
            return ProbeReading(False, None, f"previous probe of {self.path} still stuck after {stuck:.0f}s")
        self._result = None
        done = self._runs.start(self._run)
        if done is None:  # another caller's probe began in between
            return ProbeReading(False, None, f"previous probe of {self.path} still stuck")
        if not done.wait(timeout):
            return ProbeReading(False, None, f"probe of {self.path} did not finish within {timeout:g}s")
        result = self._take_result()
        if result is None:  # cannot happen: done is set only after _result
            return ProbeReading(False, None, "probe finished without a result")
        ok, seconds, detail, state_ok, state_detail = result
        if ok and seconds > timeout:
            return ProbeReading(False, seconds, f"probe took {seconds:.2f}s (limit {timeout:g}s)", state_ok,
                                state_detail)
        return ProbeReading(ok, seconds, detail, state_ok, state_detail)

    def _take_result(self) -> Optional[Tuple[bool, float, str, Optional[bool], str]]:
        return self._result  # (a method: mypy would keep the None assigned above in probe())

    def _run(self) -> None:
        start = time.monotonic()
        try:
            if self.mounted is not None and not self.mounted():
                raise OSError(errno.ENOENT, f"{self.path} is no longer mounted")
            targets = probe_targets(self.path, self.dirs, self.own_dirs())
            _probe_mq(targets)
            ok, seconds, detail = True, time.monotonic() - start, "probe ok"
        except OSError as exc:
            ok, seconds, detail = False, time.monotonic() - start, f"probe failed: {exc}{_hint(exc)}"
        state_ok, state_detail = _probe_state_dir(self.path, self.owners, self.mount_point, self.create_state_dir) \
            if ok else (None, "")
        self._result = (ok, seconds, detail, state_ok, state_detail)

    @property
    def outstanding(self) -> bool:
        return self._runs.stuck_for is not None
