"""Never start older MQ on newer data.

IBM, "Queue manager migration": a new version or release (the V and R of VRMF) migrates a queue manager when it
first starts it, and once migrated the queue manager can no longer be started by an earlier code level. A host
from an old AMI (a warm-pool instance kept through an upgrade) would otherwise try, fail, spend its restart budget
and only then be reported. So mqguard keeps, on the shared storage, the level that last ran each queue manager
(``.mqguard/levels/<directory>.json``, written after each start as the active instance) and compares this host's
installation (``dspmqver``) with it before every start: a lower release is refused and reported at once (a fresh
instance from the current launch template is the cure); a lower fix level is only said (IBM: maintenance levels
never migrate a queue manager).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Tuple

from mqguard.base.untrusted import load_json
from mqguard.efs.statedir import create_exclusive, open_state_dir
from mqguard.mq.names import directory_name

log = logging.getLogger(__name__)

LEVELS_DIR = "levels"
MAX_RECORD = 4096


def parse_version(text: str) -> Optional[str]:
    """``Version:`` of dspmqver's output (e.g. 9.4.0.0), or None."""
    for line in text.splitlines()[:200]:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Version":
            words = value.split()
            if words and all(p.isdigit() for p in words[0].split(".")) and words[0].count(".") >= 1:
                return words[0]
    return None


def vrmf(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


@dataclass(frozen=True)
class LevelRecord:
    version: str  # the VRMF that last started the queue manager (as the active instance)
    host: str
    time: float


def too_old(installed: str, last: LevelRecord) -> Optional[str]:
    """Why this installation must not start the queue manager (None: it may)."""
    if vrmf(installed)[:2] < vrmf(last.version)[:2]:
        return (f"this host's IBM MQ {installed} is an earlier release than {last.version}, which last ran the queue "
                f"manager (on {last.host}): once migrated, a queue manager cannot be started by an earlier release "
                "(IBM, 'Queue manager migration'); replace this instance with one from the current AMI")
    return None


def _name(qmgr: str) -> str:
    return f"{directory_name(qmgr)}.json"


def read(storage_path: str, owners: FrozenSet[int], qmgr: str) -> Optional[LevelRecord]:
    """The record, None when there is none (or it is not a sane one: then nothing is refused on its word)."""
    try:
        parent = open_state_dir(storage_path, owners, create=False)
    except FileNotFoundError:
        return None
    try:
        try:
            dfd = os.open(LEVELS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return None
        try:
            fd = os.open(_name(qmgr), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except FileNotFoundError:
            return None
        finally:
            os.close(dfd)
        try:
            data = os.read(fd, MAX_RECORD + 1)
            if os.fstat(fd).st_uid not in owners:
                return None
        finally:
            os.close(fd)
    finally:
        os.close(parent)
    try:
        doc = load_json(data[:MAX_RECORD])
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    version, host, when = doc.get("version"), doc.get("host"), doc.get("time")
    if not (isinstance(version, str) and parse_version(f"Version: {version}") == version and isinstance(host, str)
            and isinstance(when, (int, float)) and not isinstance(when, bool)):
        return None
    return LevelRecord(version, host[:64], float(when))


def write(storage_path: str, owners: FrozenSet[int], qmgr: str, record: LevelRecord, mount_point: bool) -> None:
    parent = open_state_dir(storage_path, owners, mount_point=mount_point)
    try:
        try:
            os.mkdir(LEVELS_DIR, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        dfd = os.open(LEVELS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            tmp = f".{_name(qmgr)}.{socket.gethostname()}.{os.getpid()}"
            fd = create_exclusive(dfd, tmp, 0o644)
            try:
                os.write(fd, json.dumps({"version": record.version, "host": record.host, "time": record.time}).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, _name(qmgr), src_dir_fd=dfd, dst_dir_fd=dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(parent)


class LevelGuard:
    """Before a start: may this installation start the queue manager? After one: record that it did."""

    def __init__(self, storage_path: str, owners: FrozenSet[int], qmgr: str, installed: Callable[[], Optional[str]],
                 mount_point: bool = False, wall: Callable[[], float] = time.time) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.qmgr = qmgr
        self.installed = installed  # dspmqver's Version (None when MQ does not answer)
        self.mount_point = mount_point
        self.wall = wall

    def refusal(self) -> Optional[str]:
        """Why not to start (None: start). Blocking: EFS and dspmqver (call it off the loop)."""
        mine = self.installed()
        if mine is None:
            return None  # MQ does not say: strmqm will speak for itself
        try:
            last = read(self.storage_path, self.owners, self.qmgr)
        except OSError as exc:
            log.warning("cannot read the MQ level that last ran %s (%s); starting it anyway", self.qmgr, exc)
            return None
        if last is None:
            return None
        if vrmf(mine) < vrmf(last.version) and vrmf(mine)[:2] == vrmf(last.version)[:2]:
            log.warning("queue manager %s: this host's IBM MQ %s is below %s, which last ran it (on %s); a lower fix "
                        "level does not migrate it back, but the instances should run one level", self.qmgr, mine,
                        last.version, last.host)
        return too_old(mine, last)

    def record(self) -> None:
        """After this host started the queue manager as the active instance (blocking: EFS)."""
        mine = self.installed()
        if mine is None:
            return
        try:
            last = read(self.storage_path, self.owners, self.qmgr)
            if last is not None and last.version == mine and last.host == socket.gethostname():
                return  # nothing new: spare the shared storage a write
            write(self.storage_path, self.owners, self.qmgr, LevelRecord(mine, socket.gethostname(), self.wall()),
                  self.mount_point)
        except OSError as exc:
            log.warning("cannot record the MQ level that ran %s (%s)", self.qmgr, exc)
