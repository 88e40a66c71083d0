"""One history event and its JSON line, parsed with bounds (the file is on a shared EFS)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from mqguard.base.untrusted import load_json, loggable

# docs/operating.md, "Failover evidence", in snake_case; the order is roughly the order of a life
EVENTS = (
    "started", "storage_ready", "created", "registered", "start_issued", "running", "standby", "takeover",
    "crash", "bad", "restart", "good", "reported", "termination_notice", "spot_notice", "ended", "paused",
    "resumed", "switchover", "drill", "stopped", "mq_errors",
    "active_lost", "elected",  # Native HA, as this host saw it: the active instance lost; another one elected
)
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
EARLIEST = 1_577_836_800.0  # 2020-01-01: older times are garbage, not history
# A time more than 10 minutes ahead is garbage, or a planted line meant to pose as "the last episode": EC2's
# clocks follow the Amazon Time Sync Service; a day of slack let a writer of the EFS fake the newest evidence.
FUTURE_SLACK = 600.0
DETAIL_MAX = 300
LINE_MAX = 2048


@dataclass(frozen=True)
class Event:
    time: float  # Unix time
    host: str
    event: str
    detail: str = ""
    instance_id: str = ""
    az: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"time": iso(self.time), "host": self.host, "instance_id": self.instance_id, "az": self.az,
                "event": self.event, "detail": self.detail}

    def line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=True) + "\n"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> Optional[float]:
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=timezone.utc).timestamp()


def safe_host(name: str) -> str:
    """A host name usable as a file name: letters, digits, dot, dash, underscore."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:63].lstrip("._-")
    return cleaned or "unknown-host"


def parse_line(text: str, host: str, now: float) -> Optional[Event]:
    """The event in one line of ``host``'s file, or None when the line is not a sane event.

    The host is the file's, never what the line claims: a writer of another host's file
    can only say things about that host.
    """
    if len(text) > LINE_MAX:
        return None
    try:
        doc = load_json(text, parse_constant=lambda name: math.nan)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    event = doc.get("event")
    stamp = doc.get("time")
    when = parse_iso(stamp) if isinstance(stamp, str) else None
    if event not in EVENTS or when is None or not EARLIEST <= when <= now + FUTURE_SLACK:
        return None
    iid = doc.get("instance_id")
    az = doc.get("az")
    detail = doc.get("detail")
    return Event(
        time=when, host=host, event=str(event),
        detail=loggable(detail, DETAIL_MAX) if isinstance(detail, str) else "",
        instance_id=iid if isinstance(iid, str) and INSTANCE_ID.fullmatch(iid) else "",
        az=loggable(az, 32) if isinstance(az, str) else "",
    )
