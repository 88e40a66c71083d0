"""Find the queue manager's execution controller (amqzxma0) and watch it.

A pidfd becomes readable the moment the process exits, so the daemon can run
a cycle within milliseconds of a crash instead of waiting for the next poll.
A zombie amqzxma0 counts as dead.
"""

from __future__ import annotations

import os
import select
from typing import FrozenSet, List, Optional

PROC = "/proc"
CONTROLLER = "amqzxma0"


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _is_zombie(stat: bytes) -> bool:
    # "pid (comm) S ..." — comm may contain spaces/parens, so split after the last ')'
    return stat.rsplit(b")", 1)[-1].split()[:1] == [b"Z"]


MQ_PROGRAM_PREFIXES = ("amq", "runmq")


def mq_program(args: List[bytes], bin_dirs: List[bytes], exe: Optional[bytes] = None) -> Optional[str]:
    """The MQ program a process runs from one of ``bin_dirs``: named by its command line (the first word or, for
    an interpreted stand-in, its second), or, for a bare argv[0] such as 9.2's ``amqzxma0 -m QM1 -x``
    (reference: strmqm), by the executable itself (``exe``, the realpath of /proc/PID/exe). None otherwise."""
    for word in args[:2]:
        if os.path.dirname(word) in bin_dirs:
            name = os.path.basename(word).decode("utf-8", "replace")
            if name.startswith(MQ_PROGRAM_PREFIXES):
                return name
    if exe is not None and args and b"/" not in args[0] and os.path.dirname(exe) in bin_dirs:
        name = os.path.basename(exe).decode("utf-8", "replace")
        if name.startswith(MQ_PROGRAM_PREFIXES) and args[0] == os.path.basename(exe):
            return name
    return None


def executable(pid: int, proc: str = PROC) -> Optional[bytes]:
    """The realpath of the program ``pid`` runs (None when it cannot be read: another user's, or gone)."""
    try:
        return os.fsencode(os.path.realpath(os.readlink(f"{proc}/{pid}/exe")))
    except OSError:
        return None


def names_qmgr(args: List[bytes], qmgr: bytes) -> bool:
    """Whether an MQ process's arguments name ``qmgr`` (``-m NAME``, ``-mNAME``, or amqpcsea's bare name)."""
    for i, word in enumerate(args):
        if word == b"-m" and i + 1 < len(args) and args[i + 1] == qmgr:
            return True
        if word == b"-m" + qmgr:
            return True
    return len(args) >= 2 and args[-1] == qmgr and args[0].endswith(b"amqpcsea")


def _runs(pid: int, program: bytes, proc: str) -> bool:
    try:
        return os.fsencode(os.path.realpath(f"{proc}/{pid}/exe")) == os.fsencode(os.path.realpath(program))
    except OSError:
        return False


def owned_by(pid: int, owners: Optional[FrozenSet[int]], proc: str = PROC) -> bool:
    """Whether ``pid`` runs as one of ``owners`` (MQ's user, root, mqguard's own; None: anyone). Any local user can
    start a process whose argv and name look like MQ's: only MQ's user runs MQ."""
    if owners is None:
        return True
    try:
        return os.stat(f"{proc}/{pid}").st_uid in owners
    except OSError:
        return False


def find_controller(qmgr: str, proc: str = PROC, bin_dir: str = "",
                    owners: Optional[FrozenSet[int]] = None) -> Optional[int]:
    """PID of a live amqzxma0 whose arguments include ``-m qmgr`` (of the installation in ``bin_dir``, when given:
    another installation on the host may run a queue manager of the same name), run by one of ``owners``."""
    want = qmgr.encode()
    program = os.path.join(os.path.normpath(bin_dir), CONTROLLER).encode() if bin_dir else b""
    dirs = [os.path.normpath(bin_dir).encode()]
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return None
    for pid in sorted(pids):
        try:
            if _read(f"{proc}/{pid}/comm").strip() != CONTROLLER.encode():
                continue
            args: List[bytes] = _read(f"{proc}/{pid}/cmdline").split(b"\0")
            if _is_zombie(_read(f"{proc}/{pid}/stat")):
                continue
        except OSError:
            continue  # exited while we looked
        if program and mq_program(args, dirs) != CONTROLLER and not _runs(pid, program, proc):
            continue  # argv[0] (or argv[1] of an interpreted stand-in), or the executable itself
        if names_qmgr(args, want) and owned_by(pid, owners, proc):
            return pid
    return None


class ControllerWatch:
    """Holds a pidfd for the current amqzxma0, if any."""

    def __init__(self, qmgr: str, proc: str = PROC, bin_dir: str = "",
                 owners: Optional[FrozenSet[int]] = None) -> None:
        self.qmgr = qmgr
        self.proc = proc
        self.bin_dir = bin_dir
        self.owners = owners
        self.pid: Optional[int] = None
        self.fd: Optional[int] = None

    def refresh(self) -> Optional[int]:
        """(Re)attach to the live controller; returns the fd to wait on, or None."""
        if self.pid is not None and self._alive():
            return self.fd
        self.close()
        pid = find_controller(self.qmgr, self.proc, self.bin_dir, self.owners)
        if pid is None:
            return None
        try:
            self.fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return None  # old kernel or already gone: fall back to polling
        self.pid = pid
        return self.fd

    def _alive(self) -> bool:
        """The pidfd is readable once the process has exited (even if not reaped)."""
        if self.fd is None:
            return False
        readable, _, _ = select.select([self.fd], [], [], 0)
        return not readable

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None
        self.pid = None


def wait_for_wake(wake_fd: int, watch: Optional[ControllerWatch], timeout: float) -> Optional[int]:
    """Sleep until ``wake_fd`` is written to (drained here), the watched controller exits, or ``timeout``.

    Returns the controller's PID when it exited (the watch is then closed), else None.
    """
    fds = [wake_fd]
    if watch is not None and watch.pid is not None and not watch._alive():
        # the watched controller exited while the loop was busy (a crash during a cycle, a drill's kill): its
        # pidfd is already readable; refreshing would look for a new controller and miss this exit
        gone = watch.pid
        watch.close()
        return gone
    pidfd = watch.refresh() if watch is not None else None
    if pidfd is not None:
        fds.append(pidfd)
    try:
        readable, _, _ = select.select(fds, [], [], timeout)
    except InterruptedError:
        readable = []
    if wake_fd in readable:
        try:
            while os.read(wake_fd, 512):
                pass
        except BlockingIOError:
            pass
    if watch is not None and pidfd is not None and pidfd in readable:
        pid = watch.pid
        watch.close()
        return pid
    return None
