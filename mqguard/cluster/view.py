"""``mqguard list``: the records as a table a person reads at 3 a.m., as the contract's JSON, and its exit code.
Pure: records and ``now`` in, text out."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from mqguard.cluster.records import HostRecord, to_json

LIST_OK, LIST_PROBLEM, LIST_UNREADABLE = 0, 1, 2  # docs/reference.md, `mqguard list`


def age_text(seconds: float) -> str:
    """An age for people: 4s, 12m03s, 2h05m, 3d04h."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def stale_after(poll_interval: float) -> float:
    """A host not seen for this long is shown as stale (never removed: it may be hung, not gone)."""
    return 3 * poll_interval + 30


def ordered(records: Sequence[HostRecord]) -> List[HostRecord]:
    rank = {"active": 0, "standby": 1, "none": 2}
    return sorted(records, key=lambda r: (rank.get(r.role, 3), r.host, r.key))


def is_stale(r: HostRecord, now: float, after: float) -> bool:
    return now - r.last_seen > after


def problems(records: Sequence[HostRecord], now: float, after: float) -> List[str]:
    """Why the exit code is not 0: empty when exactly one instance is active and nothing is stale or failed."""
    out: List[str] = []
    live = [r for r in records if not is_stale(r, now, after)]
    active = [r for r in live if r.role == "active"]
    if not records:
        out.append("no host has written a record yet")
    elif not active:
        out.append("no active instance")
    elif len(active) > 1:
        out.append(f"{len(active)} hosts say they run the active instance: " + ", ".join(r.key for r in active))
    out += [f"{r.key} stale: not seen for {age_text(now - r.last_seen)}" for r in records
            if is_stale(r, now, after)]
    out += [f"{r.key} failed" for r in live if r.state == "failed"]
    return out


def exit_code(records: Sequence[HostRecord], now: float, after: float) -> int:
    return LIST_PROBLEM if problems(records, now, after) else LIST_OK


def document(records: Sequence[HostRecord], now: float, after: float) -> Dict[str, Any]:
    return {"hosts": [to_json(r, now, is_stale(r, now, after)) for r in ordered(records)]}


COLUMNS = ("HOST", "INSTANCE", "AZ", "ROLE", "STATE", "QMGR STATUS", "PAUSED UNTIL", "LAST SEEN", "VERSION", "MQ")


def table(records: Sequence[HostRecord], now: float, after: float, refused: Sequence[str] = ()) -> List[str]:
    from mqguard.history.events import iso

    rows = []
    for r in ordered(records):
        age = f"{age_text(now - r.last_seen)} ago"
        rows.append((r.host, r.instance_id or "-", r.az or "-", r.role, r.state, r.qmgr_status or "-",
                     iso(r.paused_until)[:19] + "Z" if r.paused_until else "-",
                     age + (" STALE" if is_stale(r, now, after) else ""), r.version, r.mq_level or "-"))
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    wrong = problems(records, now, after)
    lines.append("")
    lines.append("OK: one active instance, nothing stale or failed" if not wrong else "PROBLEM: " + "; ".join(wrong))
    lines += [f"refused: {p}" for p in refused]
    return lines
