"""The last observation and verdict, as served to /status, /healthz and metrics."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from mqguard.base.clock import iso_utc
from mqguard.efs.pause import Pause
from mqguard.mq.nativeha import NhaStatus
from mqguard.supervisor.model import State


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
    summary: str = ""  # one human line, also systemd's STATUS=
    report_check: str = ""  # start-up check of the Auto Scaling path: "", ok, or why not
    qmgr_healthy: bool = False  # the queue manager's own status counts healthy (mqguard_qmgr_up)
    restart_budget_remaining: int = 0  # local restarts still allowed in the restart window
    aws_error: Optional[Dict[str, Any]] = None  # the last AWS error retrying cannot fix, until fixed
    paused: Optional[Pause] = None  # while a pause is in force
    going_away: bool = False  # the instance is being terminated (or a spot interruption is announced)
    state_dir_ok: Optional[bool] = None  # <storage.path>/.mqguard usable (None: not checked yet)
    state_dir_detail: str = ""
    mq_errors: List[Dict[str, str]] = field(default_factory=list)  # MQ's last messages: {"time","id","text","source"}
    composed_at: float = 0.0  # monotonic moment this snapshot was composed (ages grow from here, never by wall)
    cycle_at: Optional[float] = None  # monotonic end of the cycle it shows (None before the first): staleness
    # wall clock the storage was last seen good (this cycle's probe): peers ask it while theirs is bad
    storage_checked: Optional[float] = None
    native_ha: bool = False  # [queue_manager] ha = native_ha
    nha: Optional[Dict[str, Any]] = None  # Native HA: role, in sync, quorum, backlog, the instances (nha_view)

    def to_json(self) -> Dict[str, Any]:
        doc = asdict(self)
        doc.pop("cycle_at", None)  # a monotonic reading means nothing outside this process
        doc["bad_since"] = iso_utc(self.bad_since)
        doc["last_cycle"] = iso_utc(self.last_cycle)
        doc["storage_checked"] = iso_utc(self.storage_checked)
        doc["bad_seconds"] = round(self.bad_seconds, 3)
        if self.aws_error is not None:
            doc["aws_error"] = {**self.aws_error, "since": iso_utc(self.aws_error["since"]),
                                "message": redact(str(self.aws_error["message"]))}
        doc["report_check"] = redact(self.report_check)
        if self.paused is not None:
            doc["paused"] = {**asdict(self.paused), "until": iso_utc(self.paused.until),
                             "since": iso_utc(self.paused.since)}
        return doc

    @property
    def active(self) -> bool:
        """/active: this host runs the active instance, its listener accepts (when probed), the
        instance is not going away and supervision is not failed."""
        if self.native_ha and not (self.nha is not None and self.nha["role"] == "active" and self.nha["quorum_held"]):
            # only the elected active with a majority in sync: an isolated old active cannot commit (IBM, "Creating
            # a Native HA queue manager": a replica must acknowledge; mq-native-ha.md section 11), and IBM's own
            # readiness probe asks (RUNNING) and the listener, as mqguard's /active does
            return False
        return (self.qmgr_status == "running" and self.listener_ok is not False and not self.going_away
                and self.state != State.FAILED.value)

    @property
    def standby(self) -> bool:
        """/standby: this host runs a healthy standby instance."""
        if self.native_ha:  # an in-sync replica: it could take over now
            return (self.qmgr_status == "replica" and self.nha is not None and bool(self.nha["insync"])
                    and not self.going_away)
        return self.qmgr_status == "running_as_standby" and self.storage_ok and not self.going_away


def nha_view(nha: Optional[NhaStatus]) -> Optional[Dict[str, Any]]:
    """What /status, metrics and `mqguard status` say of a Native HA instance (None when dspmq did not say)."""
    if nha is None:
        return None
    backlog = nha.largest_backlog_kb()
    return {
        "role": nha.role, "instance": nha.instance, "insync": nha.insync,
        "quorum": f"{nha.quorum[0]}/{nha.quorum[1]}", "quorum_instances": nha.quorum[0],
        "configured_instances": nha.quorum[1], "quorum_held": nha.quorum_held,
        "backlog_bytes": None if backlog is None else backlog * 1024,
        "instances": [{"name": i.name, "role": i.role, "address": i.address, "connected": i.connected,
                       "insync": i.insync, "linked": i.linked,
                       "backlog_bytes": None if i.backlog_kb is None else i.backlog_kb * 1024}
                      for i in nha.instances],
    }


def _native_ha_line(snap: Snapshot) -> str:
    q, nha = snap.qmgr, snap.nha
    if nha is None:
        return f"queue manager {q} {snap.state}; Native HA status not known"
    role = {"active": "ACTIVE", "replica": "replica"}.get(nha["role"], "no role yet (election)")
    sync = "in sync" if nha["insync"] else "NOT in sync" + (
        f", {nha['backlog_bytes'] // 1024} KB behind" if nha["backlog_bytes"] else "")
    quorum = f"quorum {nha['quorum']}" if nha["quorum_held"] else f"QUORUM LOST ({nha['quorum']} in sync)"
    return f"queue manager {q} Native HA instance {nha['instance']}: {role}, {sync}; {quorum}; healthy"


_ARN = re.compile(r"arn:aws[a-zA-Z-]*:[^\s,;'\"]*")
_ACCOUNT = re.compile(r"(?<!\d)\d{12}(?!\d)")


def redact(text: str) -> str:
    """/status is unauthenticated: ARNs (role and account) become placeholders; the log keeps them."""
    return _ACCOUNT.sub("<account>", _ARN.sub("<arn>", text))


def summary_line(snap: Snapshot, uptime: float, mount_timeout: str, report_mode: str) -> str:
    """What mqguard is doing, in one line (systemctl status shows it); a pause comes first."""
    healthy_nha = snap.state in (State.RUNNING.value, State.REPLICA.value, State.REPLICA_BEHIND.value)
    line = _native_ha_line(snap) if snap.native_ha and healthy_nha else \
        _state_line(snap, uptime, mount_timeout, report_mode)
    if snap.paused is not None:
        reason = f" ({snap.paused.reason})" if snap.paused.reason else ""
        return f"PAUSED until {iso_utc(snap.paused.until)}{reason}; {line}"
    return line


def _state_line(snap: Snapshot, uptime: float, mount_timeout: str, report_mode: str) -> str:
    q, path = snap.qmgr, snap.storage_path
    efs = f"EFS {path} ok" if snap.storage_ok else f"EFS {path} BAD ({snap.storage_detail})"
    status = (snap.qmgr_status or "status unknown").replace("_", " ")
    if snap.state == State.WAITING_FOR_STORAGE:
        return f"waiting for EFS mount {path} ({uptime:.0f}s of {mount_timeout}): {snap.storage_detail}"
    if snap.state == State.PREPARING:
        return f"preparing queue manager {q}; {efs}"
    if snap.state == State.STARTING:
        return f"starting queue manager {q}; {efs}"
    if snap.state == State.RUNNING:
        lsn = "" if snap.listener_ok is None else f"; listener {snap.listener_port} ok"
        return f"queue manager {q} running; {efs}{lsn}; healthy"
    if snap.state == State.STANDBY:
        return f"queue manager {q} running as standby; {efs}; healthy"
    if snap.state == State.WARM:
        return f"warm pool: queue manager {q} not started here; {efs}"
    why = "; ".join(snap.bad_reasons) or status
    if snap.state == State.PAUSED:
        return f"queue manager {q} {status}; {efs}; " + ("healthy" if snap.healthy else f"not healthy: {why}")
    if snap.state == State.RECOVERING:
        return f"queue manager {q} {status}; recovering for {snap.bad_seconds:.0f}s ({snap.restarts} restarts): {why}"
    if snap.state == State.FAILED:
        told = "reported Unhealthy to Auto Scaling" if snap.reported_unhealthy else (
            "Unhealthy (report = log: not sent)" if report_mode == "log" else "reporting Unhealthy to Auto Scaling")
        return f"queue manager {q} {status}; FAILED: {told}: {why}"
    if snap.state == State.STOPPING:
        return f"stopping; queue manager {q} {status}"
    return f"{snap.state}; queue manager {q} {status}; {efs}"  # a state this line does not know: say it as it is
