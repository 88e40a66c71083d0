"""Parsing of ``dspmq`` output into a queue-manager status.

Handles the translated (``STATUS(Running as standby)``) and ``-n``
(``STATUS(RUNNING AS STANDBY)``) forms, case-insensitively, the spellings of
older releases (``ENDED PREEMPTIVELY``, ``NOT AVAILABLE`` in MQ 7.5), extra
attributes from ``-o all`` (``DEFAULT(…) STANDBY(…) INSTNAME(…) INSTVER(…)``)
and the ``-x`` instance lines. Anything unexpected is a parse error, never
"running". The scanner is linear in the input and refuses absurd lines early:
it runs on the supervision loop and its input comes from outside.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from mqguard.base.untrusted import quoted


class QmStatus(str, enum.Enum):
    """dspmq status words, as the lower-case label values mqguard exposes."""

    STARTING = "starting"
    RUNNING = "running"
    RUNNING_AS_STANDBY = "running_as_standby"
    RUNNING_ELSEWHERE = "running_elsewhere"
    QUIESCING = "quiescing"
    ENDING_IMMEDIATELY = "ending_immediately"
    ENDING_PRE_EMPTIVELY = "ending_pre_emptively"
    ENDED_NORMALLY = "ended_normally"
    ENDED_IMMEDIATELY = "ended_immediately"
    ENDED_UNEXPECTEDLY = "ended_unexpectedly"
    ENDED_PRE_EMPTIVELY = "ended_pre_emptively"
    STATUS_NOT_AVAILABLE = "status_not_available"
    REPLICA = "replica"  # Native HA: a running replica instance (nha: 4)
    NEGOTIATING = "negotiating"  # Native HA: running, the instances still negotiating which is active (nha: 4)
    RECOVERY_GROUP_LEADER = "recovery_group_leader"

    @classmethod
    def from_word(cls, word: str) -> QmStatus:
        """The status for a dspmq word in any spelling; ValueError (with the word) if unknown."""
        found = _VOCABULARY.get(_compact(word))
        if found is None:
            raise ValueError(f"unknown dspmq status {quoted(word)}")
        return found

    @property
    def ended(self) -> bool:
        """Not running anywhere we can see: a start may help."""
        return self in _ENDED

    @property
    def live(self) -> bool:
        """This host's instance has processes: starting, up (active or standby) or ending."""
        return self in _LIVE


def _compact(word: str) -> str:
    """Letters only, lower case: 'ENDED PRE-EMPTIVELY', 'Ended preemptively' -> 'endedpreemptively'."""
    return "".join(ch for ch in word.lower() if "a" <= ch <= "z")


# Every spelling IBM's releases print, keyed by its compact form. MQ 7.5 wrote
# "PREEMPTIVELY" and "NOT AVAILABLE"; 8.0 and later "PRE-EMPTIVELY" and
# "STATUS NOT AVAILABLE" (tests/data/dspmq-real.txt has the real lines).
_VOCABULARY: Dict[str, QmStatus] = {_compact(s.value): s for s in QmStatus}
_VOCABULARY["notavailable"] = QmStatus.STATUS_NOT_AVAILABLE

_LIVE = {
    QmStatus.STARTING,
    QmStatus.RUNNING,
    QmStatus.RUNNING_AS_STANDBY,
    QmStatus.REPLICA,
    QmStatus.NEGOTIATING,
    QmStatus.QUIESCING,
    QmStatus.ENDING_IMMEDIATELY,
    QmStatus.ENDING_PRE_EMPTIVELY,
}
_ENDED = {
    QmStatus.ENDED_NORMALLY,
    QmStatus.ENDED_IMMEDIATELY,
    QmStatus.ENDED_UNEXPECTEDLY,
    QmStatus.ENDED_PRE_EMPTIVELY,
    QmStatus.STATUS_NOT_AVAILABLE,
}

ALL_STATUSES: Tuple[QmStatus, ...] = tuple(QmStatus)


def counts_healthy(status: Optional[QmStatus], multi_instance: bool, native_ha: bool = False) -> bool:
    """RUNNING; with multi-instance also RUNNING AS STANDBY (the contract's rule); with Native HA every running
    role (a replica is healthy, not a fault; negotiating is the group's election, not this host's fault)."""
    if native_ha:
        return status in (QmStatus.RUNNING, QmStatus.REPLICA, QmStatus.NEGOTIATING)
    return status == QmStatus.RUNNING or (multi_instance and status == QmStatus.RUNNING_AS_STANDBY)


# A real line is a few hundred characters (-o all with a long install path);
# anything far longer is garbage, refused before any work is done on it.
MAX_LINE = 4096

# One attribute at a time, anchored at the scan position: each character is
# looked at a bounded number of times, whatever the line holds.
_ATTR = re.compile(r"[ \t]*([A-Za-z]{1,32})\(([^()\n]{0,1024})\)")
_MESSAGE = re.compile(r"\s*AMQ\d{4}[IWES]:")


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class Instance:
    host: str
    mode: str  # "active" or "standby" (lower-case)


@dataclass(frozen=True)
class DspmqEntry:
    name: str
    status: QmStatus
    instances: Tuple[Instance, ...] = ()


def attributes(line: str) -> Dict[str, str]:
    """The KEY(value) pairs of a line; the whole line must be made of them, each key once."""
    if len(line) > MAX_LINE:
        raise ParseError(f"dspmq line of {len(line)} characters (at most {MAX_LINE} expected): {quoted(line)}")
    pairs: Dict[str, str] = {}
    pos, end = 0, len(line.rstrip())
    while pos < end:
        m = _ATTR.match(line, pos)
        if m is None:
            raise ParseError(f"unexpected dspmq line: {quoted(line)}")
        key = m.group(1).upper()
        if key in pairs:
            raise ParseError(f"dspmq line has {key}(...) twice: {quoted(line)}")
        pairs[key] = m.group(2)
        pos = m.end()
    if not pairs:
        raise ParseError(f"unexpected dspmq line: {quoted(line)}")
    return pairs


def attribute_lines(output: str) -> Iterator[Tuple[str, Dict[str, str]]]:
    """Each non-blank line of dspmq's output with its KEY(value) pairs; an AMQ message is an error, never data."""
    for raw in output.splitlines():
        if not raw.strip():
            continue
        if _MESSAGE.match(raw):
            raise ParseError(quoted(raw))
        yield raw, attributes(raw)


def parse_dspmq(output: str) -> List[DspmqEntry]:
    """Parse ``dspmq [-n] [-x] [-o all]`` output (both streams joined)."""
    entries: List[DspmqEntry] = []
    current: Optional[Tuple[str, QmStatus, List[Instance]]] = None
    for raw, attrs in attribute_lines(output):
        if "QMNAME" in attrs:
            if current:
                entries.append(DspmqEntry(current[0], current[1], tuple(current[2])))
            if "STATUS" not in attrs:
                raise ParseError(f"dspmq line without STATUS: {quoted(raw)}")
            try:
                status = QmStatus.from_word(attrs["STATUS"])
            except ValueError as exc:
                raise ParseError(str(exc)) from None
            current = (attrs["QMNAME"], status, [])
        elif "INSTANCE" in attrs and "MODE" in attrs:
            if current is None:
                raise ParseError(f"INSTANCE line before any QMNAME: {quoted(raw)}")
            current[2].append(Instance(attrs["INSTANCE"], attrs["MODE"].strip().lower()))
        else:
            raise ParseError(f"unexpected dspmq line: {quoted(raw)}")
    if current:
        entries.append(DspmqEntry(current[0], current[1], tuple(current[2])))
    return entries


def find_entry(output: str, name: str) -> DspmqEntry:
    """The entry for ``name`` (names are case-sensitive)."""
    for entry in parse_dspmq(output):
        if entry.name == name:
            return entry
    raise ParseError(f"dspmq did not list queue manager {name}")
