"""Find the queue manager's execution controller (amqzxma0) and watch it.

A pidfd becomes readable the moment the process exits, so the daemon can run
a cycle within milliseconds of a crash instead of waiting for the next poll.
A zombie amqzxma0 counts as dead.
"""

from __future__ import annotations

import os
import select
from typing import List, Optional

PROC = "/proc"
CONTROLLER = "amqzxma0"


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _is_zombie(stat: bytes) -> bool:
    # "pid (comm) S ..." — comm may contain spaces/parens, so split after the last ')'
    return stat.rsplit(b")", 1)[-1].split()[:1] == [b"Z"]


def find_controller(qmgr: str, proc: str = PROC) -> Optional[int]:
    """PID of a live amqzxma0 whose arguments include ``-m qmgr``."""
    want = qmgr.encode()
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
        if any(a == b"-m" and i + 1 < len(args) and args[i + 1] == want for i, a in enumerate(args)):
            return pid
    return None


class ControllerWatch:
    """Holds a pidfd for the current amqzxma0, if any."""

    def __init__(self, qmgr: str, proc: str = PROC) -> None:
        self.qmgr = qmgr
        self.proc = proc
        self.pid: Optional[int] = None
        self.fd: Optional[int] = None

    def refresh(self) -> Optional[int]:
        """(Re)attach to the live controller; returns the fd to wait on, or None."""
        if self.pid is not None and self._alive():
            return self.fd
        self.close()
        pid = find_controller(self.qmgr, self.proc)
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
