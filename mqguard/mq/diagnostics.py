"""MQ's own diagnostics, surfaced: new AMQERR01.LOG messages and FDC files (docs/real-mq.md).

When a start fails or the queue manager crashes, the reason is in MQ's error
logs and FDC files (e.g. AMQ6119S, AMQ7017S log not available), not in
strmqm's few lines; on an instance Auto Scaling replaces, the local ones are
lost with it. So, after such an event, mqguard reads what MQ wrote since the
last look and logs it in one bounded journal entry:

- the queue manager's ``<DataPath>/errors/AMQERR01.LOG`` (on EFS) and MQ's
  system log ``<MQ root>/errors/AMQERR01.LOG``, followed across rotation
  (01 -> 02) by inode and offset, so each message is logged once;
- the names and probe ids of new ``<MQ root>/errors/*.FDC`` files.

Every file is opened without following links, non-blocking, checked to be a
regular file on the open descriptor, and read with a byte bound; the text is
only text (quoted, bounded). Reading runs on a background thread, one read at
a time: a hung EFS costs that thread, never the supervision loop.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Callable, Deque, Dict, FrozenSet, List, Optional, Set, Tuple

from mqguard.base.runner import CommandResult
from mqguard.base.untrusted import loggable

log = logging.getLogger(__name__)

READ_LIMIT = 256 * 1024  # bytes of one error log read per look (the rest waits for the next look)
FDC_HEAD = 4096  # bytes of an FDC file read for its probe id
MAX_FDC_NAMES = 100  # new FDC files named per look
KEEP = 10  # /status mq_errors
LOG_ENTRY = 4000  # characters of the one journal entry per look
SEVERITIES = ("I", "W", "E", "S")
# MQ's own commands: a failure of one of these is worth a look at MQ's error logs (systemctl's is not)
MQ_COMMANDS = frozenset({"crtmqm", "strmqm", "endmqm", "dspmq", "dspmqinf", "addmqinf", "runmqsc", "crtmqdir"})

_MESSAGE = re.compile(r"^(AMQ\d{4}([IWES])): (.*)$")
_TIME = re.compile(r"Time\((\d{4}-\d\d-\d\dT[\d:.]+Z)\)")
_HEADER = re.compile(r"^(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d(?: [AP]M)?) - Process\(")
_PROBE = re.compile(r"Probe Id\s*:-\s*([A-Z0-9]{1,16})")
_FDC_NAME = re.compile(r"^AMQ\d{1,10}\.\d{1,6}\.FDC$")


@dataclass(frozen=True)
class MqMessage:
    time: str  # as MQ wrote it (ISO 8601 from Time(...) when present)
    id: str  # e.g. AMQ6119S
    text: str
    source: str  # "qmgr" | "system" | "fdc"

    @property
    def severity(self) -> str:
        return self.id[-1] if self.source != "fdc" else "S"


def parse_error_log(text: str, source: str) -> List[MqMessage]:
    """Messages of AMQERR01.LOG text: each entry's first ``AMQnnnnX: text`` line (and its continuation)."""
    out: List[MqMessage] = []
    when = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _HEADER.match(line)
        if header:
            when = header.group(1)
        stamp = _TIME.search(line)
        if stamp:
            when = stamp.group(1)
        match = _MESSAGE.match(line.strip())
        if match:
            text_parts = [match.group(3)]
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith("EXPLANATION"):
                i += 1
                text_parts.append(lines[i].strip())
            out.append(MqMessage(when, match.group(1), loggable(" ".join(text_parts), 300), source))
        i += 1
    return out


def _open_regular(path: str, owners: Optional[FrozenSet[int]] = None) -> Tuple[int, os.stat_result]:
    """A regular file, never through a link; with ``owners``, only one MQ (or root) wrote: MQ's errors/ directory
    is mode 3777, so any local user can drop an AMQERR01.LOG or FDC file there to speak in MQ's name."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    if owners is not None and st.st_uid not in owners:
        os.close(fd)
        raise OSError(f"{path} belongs to uid {st.st_uid}, not to MQ: not MQ's diagnostics")
    return fd, st


def _read_from(fd: int, offset: int, limit: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(65536, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class LogTail:
    """New text of one ``errors/AMQERR01.LOG`` since the last look, across its rotation to AMQERR02."""

    def __init__(self, directory: str, owners: Optional[FrozenSet[int]] = None) -> None:
        self.directory = directory
        self.owners = owners
        self.inode: Optional[int] = None
        self.offset = 0

    def baseline(self) -> None:
        """Start at the current end: what MQ wrote before mqguard looked is not news."""
        try:
            fd, st = _open_regular(os.path.join(self.directory, "AMQERR01.LOG"), self.owners)
            os.close(fd)
            self.inode, self.offset = st.st_ino, st.st_size
        except OSError:
            self.inode, self.offset = None, 0

    def read_new(self, limit: int = READ_LIMIT) -> str:
        text = b""
        current = os.path.join(self.directory, "AMQERR01.LOG")
        try:
            fd, st = _open_regular(current, self.owners)
        except OSError:
            return ""
        try:
            if self.inode is not None and st.st_ino != self.inode:
                text += self._rest_of_rotated(limit)  # what MQ wrote before it rotated the file
                self.offset = 0
            elif st.st_size < self.offset:
                self.offset = 0  # truncated
            data = _read_from(fd, self.offset, max(0, limit - len(text)))
            self.inode, self.offset = st.st_ino, self.offset + len(data)
            text += data
        finally:
            os.close(fd)
        return text.decode("utf-8", "replace")

    def _rest_of_rotated(self, limit: int) -> bytes:
        try:
            fd, st = _open_regular(os.path.join(self.directory, "AMQERR02.LOG"), self.owners)
        except OSError:
            return b""
        try:
            return _read_from(fd, self.offset, limit) if st.st_ino == self.inode else b""
        finally:
            os.close(fd)


class FdcWatch:
    """FDC files that appeared in ``<root>/errors`` since the last look (names and probe ids)."""

    def __init__(self, directory: str, owners: Optional[FrozenSet[int]] = None) -> None:
        self.directory = directory
        self.owners = owners
        self.seen: Set[str] = set()

    def _names(self) -> Set[str]:
        try:
            return {n for n in os.listdir(self.directory) if _FDC_NAME.match(n)}
        except OSError:
            return set()

    def baseline(self) -> None:
        self.seen = self._names()

    def new(self) -> List[MqMessage]:
        names = self._names()
        fresh = sorted(names - self.seen)[:MAX_FDC_NAMES]
        self.seen |= set(fresh)
        out = []
        for name in list(fresh):
            probe, when = "?", ""
            try:
                fd, st = _open_regular(os.path.join(self.directory, name), self.owners)
                try:
                    head = _read_from(fd, 0, FDC_HEAD).decode("utf-8", "replace")
                finally:
                    os.close(fd)
                found = _PROBE.search(head)
                probe = found.group(1) if found else "?"
                when = str(int(st.st_mtime))
            except OSError as exc:
                if "not MQ's diagnostics" in str(exc):
                    continue  # someone else's file under MQ's name: not news from MQ
            out.append(MqMessage(when, name, f"FDC file {name} (probe id {probe})", "fdc"))
        return out


class Diagnostics:
    """Reads MQ's diagnostics after an event, off the loop, one read at a time."""

    def __init__(self, qmgr_errors: Callable[[], Optional[str]], root_errors: Callable[[], Optional[str]],
                 count: Callable[[str, int], None] = lambda severity, n: None,
                 count_fdc: Callable[[int], None] = lambda n: None,
                 owners: Optional[FrozenSet[int]] = None) -> None:
        self.qmgr_errors = qmgr_errors
        self.owners = owners  # who may have written MQ's diagnostics (MQ's user, root)
        self.root_errors = root_errors
        self.count = count
        self.count_fdc = count_fdc
        self._tails: Dict[str, LogTail] = {}
        self._fdc: Optional[FdcWatch] = None
        self._recent: Deque[MqMessage] = collections.deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._busy = threading.Event()
        self._pending: Optional[str] = None  # an event that came while a look was running
        self.on_found: Callable[[List[MqMessage]], None] = lambda found: None  # e.g. into the failover history
        self.started = False  # the baseline was taken (the queue manager is known here)
        self._last_periodic: Optional[float] = None

    def recent(self) -> List[MqMessage]:
        with self._lock:
            return list(self._recent)

    def start(self) -> None:
        """Take the current ends as the baseline (in the background: EFS may hang)."""
        self.started = True
        self._launch("", baseline=True)

    def on_command(self, res: CommandResult, ok: bool) -> None:
        """The command runner's observer: a failed MQ command is worth a look at MQ's own logs."""
        if not ok and self.started and res.name in MQ_COMMANDS:
            self.collect(f"a failed {res.name} ({res.outcome})")

    def collect(self, reason: str) -> bool:
        """Look for what MQ wrote since the last look and log it; False when a look is still running."""
        return self._launch(reason, baseline=False)

    def collect_every(self, reason: str, seconds: float, now: float) -> bool:
        """``collect``, at most once per ``seconds`` (for a condition that lasts, looked at every cycle)."""
        if self._last_periodic is not None and now - self._last_periodic < seconds:
            return False
        self._last_periodic = now
        return self.collect(reason)

    def last(self, message_id: str) -> str:
        """The text of the newest recent message with this id ("" when none)."""
        return next((m.text for m in reversed(self.recent()) if m.id == message_id), "")

    def _launch(self, reason: str, baseline: bool) -> bool:
        with self._lock:
            if self._busy.is_set():  # one look at a time; the next one reads everything since this one
                if not baseline:
                    self._pending = self._pending or reason
                return False
            self._busy.set()
        threading.Thread(target=self._run, args=(reason, baseline), name="mq-diagnostics", daemon=True).start()
        return True

    def _sources(self) -> List[Tuple[str, str]]:
        out = []
        for source, where in (("qmgr", self.qmgr_errors()), ("system", self.root_errors())):
            if where:
                out.append((source, where))
        return out

    def _run(self, reason: str, baseline: bool) -> None:
        while True:
            try:
                found = self.look(baseline)
                if found and not baseline:
                    self._log(reason, found)
                    self.on_found(found)
            except Exception:  # diagnostics must never take anything down
                log.exception("reading MQ's diagnostics failed")
            with self._lock:
                if self._pending is None:
                    self._busy.clear()
                    return
                reason, baseline, self._pending = self._pending, False, None

    def look(self, baseline: bool = False) -> List[MqMessage]:
        """One look (blocking: call off the loop). Returns the new messages and FDC files."""
        found: List[MqMessage] = []
        for source, directory in self._sources():
            tail = self._tails.get(source)
            if tail is None or tail.directory != directory:
                tail = self._tails[source] = LogTail(directory, self.owners)
                tail.baseline()
                if baseline:
                    continue
            if baseline:
                tail.baseline()
                continue
            found += parse_error_log(tail.read_new(), source)
        root = self.root_errors()
        if root:
            if self._fdc is None or self._fdc.directory != root:
                self._fdc = FdcWatch(root, self.owners)
                self._fdc.baseline()
            elif baseline:
                self._fdc.baseline()
            else:
                fdcs = self._fdc.new()
                found += fdcs
                if fdcs:
                    self.count_fdc(len(fdcs))
        for msg in found:
            if msg.source != "fdc":
                self.count(msg.severity, 1)
        with self._lock:
            self._recent.extend(m for m in found if m.source == "fdc" or m.severity != "I")
        return found

    @staticmethod
    def _log(reason: str, found: List[MqMessage]) -> None:
        lines = [f"{m.id}: {m.text}" if m.source != "fdc" else m.text for m in found]
        body = "; ".join(lines)
        if len(body) > LOG_ENTRY:
            body = body[:LOG_ENTRY] + f"… ({len(found)} messages)"
        worst = "S" if any(m.severity in "ES" for m in found) else "W"
        log.log(logging.ERROR if worst == "S" else logging.WARNING, "MQ's own diagnostics after %s: %s", reason, body)


def evidence_line(found: List[MqMessage], ids: int = 6, fdcs: int = 3) -> str:
    """MQ's own evidence for the failover history, bounded: the error and severe message ids (each once, in order)
    and the FDC files' names; "" when there is none worth keeping (informational messages only)."""
    seen: List[str] = []
    files: List[str] = []
    for msg in found:
        if msg.source == "fdc":
            if msg.id not in files:
                files.append(msg.id)
        elif msg.severity in ("E", "S") and msg.id not in seen:
            seen.append(msg.id)
    parts = []
    if seen:
        parts.append(" ".join(seen[:ids]) + (f" (+{len(seen) - ids} more)" if len(seen) > ids else ""))
    if files:
        parts.append("FDC " + " ".join(files[:fdcs]) + (f" (+{len(files) - fdcs} more)" if len(files) > fdcs else ""))
    return "; ".join(parts)[:300]
