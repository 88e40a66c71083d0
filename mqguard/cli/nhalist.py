"""``mqguard list`` for a Native HA queue manager (contract section 28): each host keeps its own storage, so there
are no shared records to read; the group as this instance sees it comes from ``dspmq -o nativeha -x`` (IBM: "the
information supplied by the active instance is definitive, information from replica nodes might be out of date").
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

from mqguard.cluster.view import LIST_OK, LIST_PROBLEM, LIST_UNREADABLE
from mqguard.config import Config, ConfigError
from mqguard.mq.commands import build_runner
from mqguard.mq.control import MqControl
from mqguard.mq.nativeha import NhaStatus


def _word(flag: object) -> str:
    return "?" if flag is None else ("yes" if flag else "no")


def problems(nha: NhaStatus) -> List[str]:
    """Pure: what an operator must know about the group (empty: one active, a majority in sync)."""
    out: List[str] = []
    actives = [i.name for i in nha.instances if i.role == "active"]
    if len(actives) != 1:
        out.append("no active instance" if not actives else f"more than one active instance: {', '.join(actives)}")
    if not nha.quorum_held:
        out.append(f"quorum lost: {nha.running_instances()} of {nha.quorum[1]} instances run; no instance can be "
                   "active until a majority runs again")
    behind = [i.name for i in nha.instances if i.insync is False]
    if behind:
        out.append(f"not in sync: {', '.join(behind)} (catching up, or down; see docs/native-ha.md)")
    return out


def document(nha: NhaStatus) -> Dict[str, Any]:
    return {"qmgr": nha.qmgr, "seen_from": nha.instance, "role": nha.role, "quorum": f"{nha.quorum[0]}/{nha.quorum[1]}",
            "instances": [{"name": i.name, "role": i.role, "address": i.address, "connected_to_active": i.connected,
                           "connected_to_this": i.linked, "insync": i.insync,
                           "backlog_bytes": None if i.backlog_kb is None else i.backlog_kb * 1024}
                          for i in nha.instances],
            "problems": problems(nha)}


def table(nha: NhaStatus) -> List[str]:
    rows = [("INSTANCE", "ROLE", "ADDRESS", "CONNECTED", "IN SYNC", "BACKLOG")]
    for i in nha.instances:
        name = i.name + (" (this host)" if i.name == nha.instance else "")
        backlog = "?" if i.backlog_kb is None else f"{i.backlog_kb} KB"
        rows.append((name, i.role, i.address, _word(i.linked if i.name != nha.instance else True), _word(i.insync),
                     backlog))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]


def run_nha_list(cfg: Config, as_json: bool) -> int:
    try:
        control = MqControl(cfg.queue_manager, cfg.storage.path, build_runner(cfg), cfg.health.command_timeout)
    except ConfigError as exc:
        print(f"mqguard list: {exc}", file=sys.stderr)
        return LIST_UNREADABLE
    nha, why = control.nativeha()
    if nha is None:
        print(f"mqguard list: dspmq -o nativeha does not answer for {cfg.queue_manager.name}: {why}", file=sys.stderr)
        return LIST_UNREADABLE
    found = problems(nha)
    if as_json:
        print(json.dumps(document(nha), indent=2))
    else:
        seen = "the active's view (definitive)" if nha.role == "active" else \
            f"as {nha.role} instance {nha.instance} sees it (a replica's view may be out of date)"
        print(f"{nha.qmgr} Native HA group, quorum {nha.quorum[0]}/{nha.quorum[1]}, {seen}:")
        for line in table(nha):
            print(line)
        for problem in found:
            print(f"\nPROBLEM: {problem}")
    return LIST_PROBLEM if found else LIST_OK
