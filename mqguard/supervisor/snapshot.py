"""The last observation and verdict, as served to /status, /healthz and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from mqguard.clock import iso_utc


@dataclass(frozen=True)
class Snapshot:
    version: str
    qmgr: str
    state: str
    healthy: bool
    qmgr_status: Optional[str]
    qmgr_detail: str
    storage_path: str
    storage_ok: bool
    storage_detail: str
    listener_port: int
    listener_ok: Optional[bool]
    bad_since: Optional[float]  # wall clock
    bad_seconds: float
    restarts: int
    reported_unhealthy: bool
    last_cycle: Optional[float]  # wall clock
    verdict: str
    bad_reasons: List[str] = field(default_factory=list)
    controller_pid: Optional[int] = None
    cycles: int = 0

    def to_json(self) -> Dict[str, Any]:
        doc = asdict(self)
        doc["bad_since"] = iso_utc(self.bad_since)
        doc["last_cycle"] = iso_utc(self.last_cycle)
        doc["bad_seconds"] = round(self.bad_seconds, 3)
        return doc
