"""Parsing of ``dspmq`` output into a queue-manager status.

Handles both translated (``STATUS(Running as standby)``) and ``-n``
(``STATUS(RUNNING AS STANDBY)``) forms, case-insensitively, and the ``-x``
instance lines. Anything unexpected is a parse error, never "running".
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple


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
    REPLICA = "replica"
    RECOVERY_GROUP_LEADER = "recovery_group_leader"

    @classmethod
    def from_word(cls, word: str) -> QmStatus:
        key = re.sub(r"[\s\-]+", "_", word.strip().lower())
        return cls(key)

    @property
    def ended(self) -> bool:
        """Not running anywhere we can see: a start may help."""
        return self in _ENDED


_ENDED = {
    QmStatus.ENDED_NORMALLY,
    QmStatus.ENDED_IMMEDIATELY,
    QmStatus.ENDED_UNEXPECTEDLY,
    QmStatus.ENDED_PRE_EMPTIVELY,
    QmStatus.STATUS_NOT_AVAILABLE,
}

ALL_STATUSES: Tuple[QmStatus, ...] = tuple(QmStatus)


def counts_healthy(status: Optional[QmStatus], multi_instance: bool) -> bool:
    """RUNNING; with multi-instance also RUNNING AS STANDBY (the contract's rule)."""
    return status == QmStatus.RUNNING or (multi_instance and status == QmStatus.RUNNING_AS_STANDBY)

_ATTR = re.compile(r"([A-Za-z]+)\(([^()]*)\)")


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


def _attrs(line: str) -> List[Tuple[str, str]]:
    """The KEY(value) pairs of a line; the whole line must be made of them."""
    pairs = [(m.group(1).upper(), m.group(2)) for m in _ATTR.finditer(line)]
    leftover = _ATTR.sub("", line).strip()
    if leftover or not pairs:
        raise ParseError(f"unexpected dspmq line: {line.strip()!r}")
    return pairs


def parse_dspmq(output: str) -> List[DspmqEntry]:
    """Parse ``dspmq [-n] [-x]`` output (both streams joined)."""
    entries: List[DspmqEntry] = []
    current: Optional[Tuple[str, QmStatus, List[Instance]]] = None
    for raw in output.splitlines():
        if not raw.strip():
            continue
        if re.match(r"^\s*AMQ\d{4}[IWES]:", raw):
            raise ParseError(raw.strip())
        attrs = dict(_attrs(raw))
        if "QMNAME" in attrs:
            if current:
                entries.append(DspmqEntry(current[0], current[1], tuple(current[2])))
            if "STATUS" not in attrs:
                raise ParseError(f"dspmq line without STATUS: {raw.strip()!r}")
            try:
                status = QmStatus.from_word(attrs["STATUS"])
            except ValueError:
                raise ParseError(f"unknown dspmq status {attrs['STATUS']!r}") from None
            current = (attrs["QMNAME"], status, [])
        elif "INSTANCE" in attrs and "MODE" in attrs:
            if current is None:
                raise ParseError(f"INSTANCE line before any QMNAME: {raw.strip()!r}")
            current[2].append(Instance(attrs["INSTANCE"], attrs["MODE"].strip().lower()))
        else:
            raise ParseError(f"unexpected dspmq line: {raw.strip()!r}")
    if current:
        entries.append(DspmqEntry(current[0], current[1], tuple(current[2])))
    return entries


def find_entry(output: str, name: str) -> DspmqEntry:
    """The entry for ``name`` (names are case-sensitive)."""
    for entry in parse_dspmq(output):
        if entry.name == name:
            return entry
    raise ParseError(f"dspmq did not list queue manager {name}")
