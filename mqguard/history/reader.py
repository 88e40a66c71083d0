"""Reading every host's history file with bounds (contract §24: the EFS is shared).

Only ``<host>.jsonl`` and ``<host>.jsonl.1`` with a sane host name are read; each is
opened without following links or blocking, type checked on the descriptor, and only
its last ``TAIL_BYTES`` are read (a 100 MB file costs what a 4 MiB one does). Lines
that are not sane events are skipped and counted; a host's lines speak for that host
only.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional

from mqguard.history.events import HOST_NAME, Event, parse_line
from mqguard.history.writer import open_history_dir

TAIL_BYTES = 4 * 1024 * 1024
MAX_FILES = 200  # hosts x 2 generations; more is someone filling the directory
FILE_NAME = re.compile(r"^(?P<host>.+)\.jsonl(?P<older>\.1)?$")


@dataclass
class History:
    events: List[Event] = field(default_factory=list)
    skipped_lines: int = 0
    problems: List[str] = field(default_factory=list)  # files refused, with the reason


def read_history(storage_path: str, owners: FrozenSet[int], now: float, since: Optional[float] = None) -> History:
    """Every host's events, oldest first; OSError when the history directory cannot be read."""
    out = History()
    try:
        dfd = open_history_dir(storage_path, owners, create=False)
    except FileNotFoundError:
        return out  # nothing written yet (or .mqguard not made yet): an empty history, and nothing created
    try:
        names = sorted(os.listdir(dfd), key=lambda n: (not n.endswith(".1"), n))  # older generation first
        if len(names) > MAX_FILES:
            out.problems.append(f"{len(names)} files in the history directory; reading the first {MAX_FILES}")
            names = names[:MAX_FILES]
        for name in names:
            m = FILE_NAME.match(name)
            if m is None or not HOST_NAME.match(m.group("host")):
                continue
            try:
                text = _tail(dfd, name)
            except OSError as exc:
                out.problems.append(f"history/{name}: {exc.strerror or exc}")
                continue
            _parse_into(out, text, m.group("host"), now, since)
    finally:
        os.close(dfd)
    out.events.sort(key=lambda e: (e.time, e.host))
    return out


def _parse_into(out: History, text: str, host: str, now: float, since: Optional[float]) -> None:
    for line in text.splitlines():
        if not line.strip():
            continue
        ev = parse_line(line, host, now)
        if ev is None:
            out.skipped_lines += 1
        elif since is None or ev.time >= since:
            out.events.append(ev)


def _tail(dfd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, f"not a regular file ({stat.filemode(st.st_mode)})")
        start = max(0, st.st_size - TAIL_BYTES)
        data = os.pread(fd, TAIL_BYTES, start)
    finally:
        os.close(fd)
    if start > 0:  # the first line is cut: drop it
        data = data[data.find(b"\n") + 1:]
    return data.decode("utf-8", "replace")
