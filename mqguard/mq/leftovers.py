"""Processes a dead queue manager left behind, cleared with SIGKILL before the next start.

When the execution controller (amqzxma0) is killed, its children (amqzmuc0,
amqzfuma, amqzlaa0, runmqlsr, …) may live on, and strmqm fails with exit 24
(AMQ8041S) until they are gone; MQ's processes ignore SIGTERM (reference:
strmqm; IBM's sample unit uses KillMode=none for that reason). IBM's procedure
for a queue manager that will not restart is to end those processes by hand
(kill -9): mqguard does exactly that, and only for processes that are
(1) MQ programs from the installation's bin directory, (2) of this queue
manager (``-m NAME``, ``-mNAME``, or amqpcsea's bare name), only when dspmq has
just said that no instance of it runs on this host, and never while an
execution controller (amqzxma0) of it is alive: that is an instance, not leftovers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Callable, FrozenSet, List, Optional

from mqguard.mq.pidwatch import CONTROLLER, PROC, _is_zombie, _read, executable, mq_program, names_qmgr, owned_by

log = logging.getLogger(__name__)

KILL_WAIT = 5.0  # how long to wait for killed leftovers to disappear


def _cmdline(pid: int, proc: str) -> List[bytes]:
    try:
        return _read(f"{proc}/{pid}/cmdline").split(b"\0")
    except OSError:
        return []


def _bin_dirs(bin_dir: str) -> List[bytes]:
    """The installation's bin directory (as configured and resolved: /proc/PID/exe is a resolved path)."""
    dirs = {os.path.normpath(d) for d in (bin_dir, "/opt/mqm/bin")}
    return [d.encode() for d in dirs | {os.path.realpath(d) for d in dirs}]


def find_leftovers(qmgr: str, bin_dir: str, proc: str = PROC,
                   owners: Optional[FrozenSet[int]] = None) -> List[int]:
    """PIDs of live MQ processes of ``qmgr`` started from ``bin_dir`` (or /opt/mqm/bin), run by one of ``owners``
    (another user's look-alike is never killed)."""
    dirs = _bin_dirs(bin_dir)
    want = qmgr.encode()
    found = []
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            args = _read(f"{proc}/{pid}/cmdline").split(b"\0")
            if mq_program(args, dirs, executable(pid, proc)) is None or not names_qmgr(args, want):
                continue
            if not owned_by(pid, owners, proc):
                continue
            if _is_zombie(_read(f"{proc}/{pid}/stat")):
                continue
        except OSError:
            continue
        found.append(pid)
    return sorted(found)


def clear_leftovers(qmgr: str, bin_dir: str, proc: str = PROC,
                    kill: Callable[[int, int], None] = os.kill, sleep: Callable[[float], None] = time.sleep,
                    owners: Optional[FrozenSet[int]] = None) -> int:
    """SIGKILL what a dead instance of ``qmgr`` left; returns how many were killed. Waits (bounded) for them."""
    pids = find_leftovers(qmgr, bin_dir, proc, owners)
    if not pids:
        return 0
    dirs = _bin_dirs(bin_dir)
    controllers = [p for p in pids if mq_program(_cmdline(p, proc), dirs, executable(p, proc)) == CONTROLLER]
    if controllers:
        # a live execution controller is an instance, not leftovers (whatever dspmq said): never kill it
        log.warning("queue manager %s: its execution controller runs (pid %s) although no instance was seen; "
                    "leaving its processes alone", qmgr, " ".join(map(str, controllers)))
        return 0
    log.warning("queue manager %s: %d process(es) of its last instance still run (pids %s); they ignore SIGTERM "
                "and would fail strmqm with AMQ8041 (exit 24): killing them (SIGKILL)",
                qmgr, len(pids), " ".join(map(str, pids)))
    for pid in pids:
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError) as exc:
            log.warning("cannot kill pid %d: %s", pid, exc)
    deadline = time.monotonic() + KILL_WAIT
    while time.monotonic() < deadline and find_leftovers(qmgr, bin_dir, proc, owners):
        sleep(0.05)
    return len(pids)
