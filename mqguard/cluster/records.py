"""One host's record on the shared storage (``.mqguard/hosts/<instance id or host>.json``): what ``mqguard list``
shows for it. Encoding is ours; decoding treats the file as outside input (any writer of the storage may have put
anything there): every field typed and bounded, or the file is refused."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from mqguard.base.untrusted import load_json
from mqguard.history.events import FUTURE_SLACK, HOST_NAME, INSTANCE_ID
from mqguard.supervisor.model import State

HOSTS_DIR = "hosts"
MAX_RECORD = 4096  # bytes: a record is ~400
ROLES = ("active", "standby", "none")
STATES = tuple(s.value for s in State)
_TEXT = re.compile(r"^[\x20-\x7e]{0,200}$")  # printable ASCII, bounded
_ADDRESS = re.compile(r"^[A-Za-z0-9.:_\[\]-]{1,100}:\d{1,5}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+_-]{1,32}$")


@dataclass(frozen=True)
class HostRecord:
    host: str  # the host name
    instance_id: str  # "" off EC2
    az: str
    qmgr: str
    state: str  # mqguard's state (README, "How it decides")
    role: str  # active | standby | none
    qmgr_status: Optional[str]  # dspmq's status, normalised; None when not known
    paused_until: Optional[float]  # Unix time
    last_seen: float  # Unix time the record was written
    version: str  # mqguard's
    mq_level: Optional[str]  # dspmqver's Version
    storage_ok: bool
    storage_detail: str
    address: str  # where this host's mqguard answers HTTP (host:port), "" when it does not
    poll_interval: float

    @property
    def key(self) -> str:
        """The file's name without .json: the instance id on EC2, else the host name."""
        return self.instance_id or self.host

    def line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=True)


def role_of(qmgr_status: Optional[str]) -> str:
    return {"running": "active", "running_as_standby": "standby"}.get(qmgr_status or "", "none")


def parse_record(data: bytes, key: str, now: float) -> HostRecord:
    """The record in a host's file named ``key``.json; ValueError naming what is wrong."""
    doc = load_json(data)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")

    def text(name: str, pattern: re.Pattern[str] = _TEXT, empty: bool = True) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or (value == "" and not empty) or (value and not pattern.fullmatch(value)):
            raise ValueError(f"{name}: not a sane value")
        return value

    def number(name: str) -> float:
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name}: not a number")
        return float(value)

    host = text("host", HOST_NAME, empty=False)
    instance_id = text("instance_id", INSTANCE_ID)
    if (instance_id or host) != key:
        raise ValueError(f"the record speaks for {instance_id or host}, but its file is {key}.json")
    state, role = text("state"), text("role")
    if state not in STATES or role not in ROLES:
        raise ValueError("state or role: not one mqguard knows")
    qmgr_status = doc.get("qmgr_status")
    if qmgr_status is not None and (not isinstance(qmgr_status, str) or not re.fullmatch(r"[a-z_]{1,40}", qmgr_status)):
        raise ValueError("qmgr_status: not a sane value")
    last_seen = number("last_seen")
    if last_seen > now + FUTURE_SLACK:
        raise ValueError("last_seen: in the future")
    storage_ok = doc.get("storage_ok")
    if not isinstance(storage_ok, bool):
        raise ValueError("storage_ok: not true or false")
    poll = number("poll_interval")
    address = text("address", _ADDRESS)
    mq_level = doc.get("mq_level")
    if mq_level is not None and (not isinstance(mq_level, str) or not _VERSION.fullmatch(mq_level)):
        raise ValueError("mq_level: not a sane value")
    paused_until = None if doc.get("paused_until") is None else number("paused_until")
    return HostRecord(host=host, instance_id=instance_id, az=text("az", re.compile(r"^[a-z0-9-]{1,30}$")),
                      qmgr=text("qmgr", re.compile(r"^[A-Za-z0-9._/%]{1,48}$")), state=state, role=role,
                      qmgr_status=qmgr_status, paused_until=paused_until,
                      last_seen=last_seen, version=text("version", _VERSION), mq_level=mq_level,
                      storage_ok=storage_ok, storage_detail=text("storage_detail"), address=address,
                      poll_interval=max(0.1, min(poll, 3600.0)))


def to_json(r: HostRecord, now: float, stale: bool) -> Dict[str, Any]:
    """The shape of ``mqguard list --json`` (docs/reference.md)."""
    from mqguard.history.events import iso

    return {"host": r.host, "instance_id": r.instance_id, "az": r.az, "state": r.state, "role": r.role,
            "qmgr_status": r.qmgr_status, "paused_until": iso(r.paused_until) if r.paused_until else None,
            "last_seen": iso(r.last_seen), "age_seconds": round(max(0.0, now - r.last_seen), 1), "stale": stale,
            "version": r.version, "mq_level": r.mq_level}
