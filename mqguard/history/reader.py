"""Reading every host's history file with bounds (the EFS is shared: any writer of it may fill this directory).

Only ``<host>.jsonl`` and ``<host>.jsonl.1`` with a sane host name are read; each is opened without following
links or blocking and type checked on the descriptor. Everything is bounded IN TOTAL by a ``Budget`` (bytes
read and events kept across all files), not only per file: 200 compact files of 4 MiB once cost a daemon
5 GB. The reader's own host comes first, then the newest files; each file gets a fair share of what is left
(so a crowd of planted files cannot push a real host out), only the end of a file is read, and only its
newest events are kept. What was left out is said in ``History.truncated``. Lines that are not sane events
are skipped and counted; a host's lines speak for that host only.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional, Tuple

from mqguard.history.events import HOST_NAME, Event, parse_line
from mqguard.history.writer import open_history_dir

TAIL_BYTES = 4 * 1024 * 1024  # the most read of any one file
MAX_ENTRIES = 5000  # directory entries looked at; more is someone filling the directory
MAX_FILES = 200  # history files read (hosts x 2 generations)
FILE_NAME = re.compile(r"^(?P<host>.+)\.jsonl(?P<older>\.1)?$")


@dataclass(frozen=True)
class Budget:
    """What one read may cost in total."""

    total_bytes: int
    max_events: int
    min_share: int = 64 * 1024  # bytes every file gets at least (while the total lasts)


# The daemon keeps only what its metrics need (the last episodes); the CLI shows a person much more.
DAEMON_BUDGET = Budget(total_bytes=4 * 1024 * 1024, max_events=10_000)
CLI_BUDGET = Budget(total_bytes=32 * 1024 * 1024, max_events=100_000)


@dataclass
class History:
    events: List[Event] = field(default_factory=list)
    skipped_lines: int = 0
    problems: List[str] = field(default_factory=list)  # files refused, with the reason
    truncated: List[str] = field(default_factory=list)  # what the budget left out


def read_history(storage_path: str, owners: FrozenSet[int], now: float, since: Optional[float] = None,
                 budget: Budget = CLI_BUDGET, first: str = "") -> History:
    """Every host's events, oldest first, within ``budget``; ``first``'s files are read before any other.
    OSError when the history directory cannot be read."""
    out = History()
    try:
        dfd = open_history_dir(storage_path, owners, create=False)
    except FileNotFoundError:
        return out  # nothing written yet (or .mqguard not made yet): an empty history, and nothing created
    try:
        files = _candidates(dfd, out, first)
        bytes_left, events_left = budget.total_bytes, budget.max_events
        short = 0
        per_file: List[Tuple[Tuple[str, int], List[Event]]] = []
        for i, (name, host, size) in enumerate(files):
            if bytes_left <= 0 or events_left <= 0:
                out.truncated.append(f"{len(files) - i} file(s) not read: the total of "
                                     f"{budget.total_bytes // 1024} KiB / {budget.max_events} events was spent")
                break
            share = min(TAIL_BYTES, bytes_left, max(budget.min_share, bytes_left // (len(files) - i)))
            keep = max(1, events_left // (len(files) - i))
            try:
                text, read = _tail(dfd, name, share)
            except OSError as exc:
                out.problems.append(f"history/{name}: {exc.strerror or exc}")
                continue
            bytes_left -= read
            events, cut = _parse_newest(out, text, host, now, since, keep)
            per_file.append(((host, 1 if name.endswith(".jsonl") else 0), events))
            events_left -= len(events)
            short += 1 if size > read or cut else 0
        if short:
            out.truncated.append(f"{short} file(s) read only in part (their newest lines): a read is bounded to "
                                 f"{budget.total_bytes // 1024} KiB and {budget.max_events} events in total")
    finally:
        os.close(dfd)
    for _, events in sorted(per_file, key=lambda item: item[0]):  # a host's older generation before its newer
        out.events.extend(events)
    out.events.sort(key=lambda e: (e.time, e.host))  # stable: lines of one millisecond keep their file order
    return out


def _candidates(dfd: int, out: History, first: str) -> List[Tuple[str, str, int]]:
    """(name, host, size) of the files worth reading: ``first``'s, then the newest; bounded."""
    found: List[Tuple[bool, float, str, str, int]] = []
    seen = 0
    with os.scandir(dfd) as entries:
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                out.problems.append(f"more than {MAX_ENTRIES} entries in the history directory; the rest not looked at")
                break
            m = FILE_NAME.fullmatch(entry.name)
            if m is None or not HOST_NAME.fullmatch(m.group("host")):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            found.append((m.group("host") != first, -st.st_mtime, entry.name, m.group("host"), st.st_size))
    found.sort()
    if len(found) > MAX_FILES:
        out.problems.append(f"{len(found)} files in the history directory; reading {MAX_FILES} (this host's and "
                            "the newest)")
        found = found[:MAX_FILES]
    return [(name, host, size) for _, _, name, host, size in found]


def _parse_newest(out: History, text: str, host: str, now: float, since: Optional[float],
                  keep: int) -> Tuple[List[Event], bool]:
    """Parse ``text``'s lines from the newest back, keeping at most ``keep`` events: (events in file order,
    stopped early)."""
    kept: List[Event] = []
    cut = False
    for line in reversed(text.splitlines()):
        if len(kept) >= keep:
            cut = True
            break
        if not line.strip():
            continue
        ev = parse_line(line, host, now)
        if ev is None:
            out.skipped_lines += 1
        elif since is None or ev.time >= since:
            kept.append(ev)
    kept.reverse()
    return kept, cut


def _tail(dfd: int, name: str, limit: int) -> Tuple[str, int]:
    """The last ``limit`` bytes of ``name`` (from a line start) and how many bytes were read."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, f"not a regular file ({stat.filemode(st.st_mode)})")
        start = max(0, st.st_size - limit)
        data = os.pread(fd, limit, start)
    finally:
        os.close(fd)
    read = len(data)
    if start > 0:  # the first line is cut: drop it
        data = data[data.find(b"\n") + 1:]
    return data.decode("utf-8", "replace"), read
