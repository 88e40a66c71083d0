"""``dspmq -o nativeha -x`` parsed: this instance's role, whether it is in sync, the group's quorum, and what it
knows of each configured instance (IBM MQ Native HA, docs/real-mq.md).

The fields are read by name, so both field sets IBM's releases print are understood (9.2/9.3: ``… CONNINST(..)
ALTDATE(..) ALTTIME(..)``; 9.4.x: ``… CONNINST(..) ACKLSN(<..>) HASTATUS(..)``, and ``GRP*`` on the header line).
Values are compared case-insensitively (IBM's examples print ``INSYNC(Yes)``, real output ``INSYNC(yes)``, ``-n``
``INSYNC(YES)``). ``Unknown`` is kept as "not known" (None), never taken for yes. Anything that is not this
format is a ParseError, never an in-sync active.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mqguard.base.untrusted import quoted
from mqguard.mq.status import ParseError, attribute_lines

ROLES = ("active", "replica", "unknown")
_QUORUM = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{1,2})\s*$")


@dataclass(frozen=True)
class NhaInstance:
    """One configured instance as this instance sees it (information from a replica may be out of date)."""

    name: str
    role: str  # active | replica | unknown
    address: str  # REPLADDR (the host; some releases add the port)
    connected: Optional[bool]  # CONNACTV: it has its connections to the active
    insync: Optional[bool]
    backlog_kb: Optional[int]  # KB written by the active not yet acknowledged by this instance
    linked: Optional[bool] = None  # CONNINST: that instance is connected to this one


@dataclass(frozen=True)
class NhaStatus:
    qmgr: str
    role: str  # this instance's: active | replica | unknown
    instance: str  # this instance's name (-lr)
    insync: bool
    quorum: Tuple[int, int]  # (in-sync instances, configured instances)
    instances: Tuple[NhaInstance, ...] = ()

    def running_instances(self) -> int:
        """Instances running as far as this one knows: itself and every other connected to it (CONNINST)."""
        return 1 + sum(1 for i in self.instances if i.name != self.instance and i.linked)

    @property
    def quorum_held(self) -> bool:
        """Whether the group has (or can elect) an active. The active's QUORUM is definitive: a majority in sync
        (IBM: commit needs 2 of 3). A replica's QUORUM "might be out of date" (IBM), so there: an active it is
        connected to, or a majority running (an election can take place)."""
        if self.role == "active":
            return self.quorum[0] * 2 > self.quorum[1]
        if any(i.role == "active" and i.name != self.instance and i.linked for i in self.instances):
            return True
        return self.running_instances() * 2 > self.quorum[1]

    def largest_backlog_kb(self) -> Optional[int]:
        """On the active: the most any replica has still to acknowledge; elsewhere this instance's own."""
        if self.role == "active":
            known = [i.backlog_kb for i in self.instances if i.name != self.instance and i.backlog_kb is not None]
            return max(known) if known else None
        return self.backlog_kb

    @property
    def backlog_kb(self) -> Optional[int]:
        """This instance's backlog as its line says (the active's view is definitive; None when not known)."""
        mine = [i for i in self.instances if i.name == self.instance]
        return mine[0].backlog_kb if mine else None


def _flag(value: str) -> Optional[bool]:
    word = value.strip().lower()
    if word == "yes":
        return True
    if word == "no":
        return False
    if word in ("unknown", ""):
        return None
    raise ParseError(f"unexpected yes/no value {quoted(value)}")


def _role(value: str) -> str:
    word = value.strip().lower()
    if word not in ROLES:
        raise ParseError(f"unknown Native HA role {quoted(value)}")
    return word


def _backlog(value: str) -> Optional[int]:
    word = value.strip()
    if word.lower() in ("unknown", ""):
        return None
    if not word.isdigit() or len(word) > 15:
        raise ParseError(f"unexpected BACKLOG value {quoted(value)}")
    return int(word)


def _header(attrs: Dict[str, str], line: str) -> Tuple[str, str, str, bool, Tuple[int, int]]:
    for key in ("ROLE", "INSTANCE", "INSYNC", "QUORUM"):
        if key not in attrs:
            raise ParseError(f"Native HA status line without {key}: {quoted(line)}")
    m = _QUORUM.match(attrs["QUORUM"])
    if m is None:
        raise ParseError(f"unexpected QUORUM value {quoted(attrs['QUORUM'])}")
    have, configured = int(m.group(1)), int(m.group(2))
    if configured == 0 or have > configured:
        raise ParseError(f"impossible QUORUM({quoted(attrs['QUORUM'])})")
    return (attrs["QMNAME"], _role(attrs["ROLE"]), attrs["INSTANCE"].strip(), _flag(attrs["INSYNC"]) is True,
            (have, configured))


def parse_nativeha(output: str, qmgr: str) -> NhaStatus:
    """The status of queue manager ``qmgr`` from ``dspmq -o nativeha [-x] [-n] -m QMGR`` (both streams)."""
    found: Optional[Tuple[str, str, str, bool, Tuple[int, int]]] = None
    instances: List[NhaInstance] = []
    for raw, attrs in attribute_lines(output):
        if "QMNAME" in attrs:
            if found is not None:
                break  # another queue manager's line: ours came first (dspmq -m lists one)
            if attrs["QMNAME"] != qmgr:
                continue
            found = _header(attrs, raw)
        elif "INSTANCE" in attrs and "ROLE" in attrs:
            if found is None:
                raise ParseError(f"instance line before the queue manager's: {quoted(raw)}")
            instances.append(NhaInstance(
                name=attrs["INSTANCE"].strip(), role=_role(attrs["ROLE"]), address=attrs.get("REPLADDR", "").strip(),
                connected=_flag(attrs.get("CONNACTV", "Unknown")), insync=_flag(attrs.get("INSYNC", "Unknown")),
                backlog_kb=_backlog(attrs.get("BACKLOG", "Unknown")), linked=_flag(attrs.get("CONNINST", "Unknown"))))
        else:
            raise ParseError(f"unexpected dspmq -o nativeha line: {quoted(raw)}")
    if found is None:
        raise ParseError(f"dspmq -o nativeha did not list queue manager {qmgr}")
    name, role, instance, insync, quorum = found
    return NhaStatus(name, role, instance, insync, quorum, tuple(instances))
