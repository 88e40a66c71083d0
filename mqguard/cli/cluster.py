"""``mqguard list``: every host that shares this storage, like ``patronictl list`` (docs/operating.md)."""

from __future__ import annotations

import json
import sys
import time
from typing import List, Optional

from mqguard.base import privileges
from mqguard.cluster import view
from mqguard.cluster.reader import Hosts, read_hosts
from mqguard.config import Config
from mqguard.efs.statedir import allowed_owners
from mqguard.efs.storage import check_mount


def load(cfg: Config, now: float) -> tuple[Optional[Hosts], str]:
    """The records, or None and why they cannot be read (the storage is unmounted, or unreadable)."""
    mount = check_mount(cfg.storage.path, cfg.storage.fstypes)
    if not mount.ok:  # the directory under a bare mount point is not the shared one
        return None, mount.detail
    try:
        return read_hosts(cfg.storage.path, allowed_owners(cfg.queue_manager.run_as), now), ""
    except OSError as exc:
        return None, f"{cfg.storage.path}/.mqguard/hosts: {exc.strerror or exc}"


def run_list(cfg: Config, as_json: bool, now: Optional[float] = None) -> int:
    try:
        reader = privileges.drop_to(cfg.queue_manager.run_as)  # as root: read as the MQ user (EFS squashes root)
    except (KeyError, OSError) as exc:
        print(f"mqguard list: cannot read as {cfg.queue_manager.run_as}: {exc}", file=sys.stderr)
        return view.LIST_UNREADABLE
    now = time.time() if now is None else now
    hosts, why = load(cfg, now)
    if hosts is None:
        print(f"mqguard list: cannot read the hosts' records{f' (as {reader})' if reader else ''}: {why}",
              file=sys.stderr)
        return view.LIST_UNREADABLE
    after = view.stale_after(cfg.health.poll_interval)
    if as_json:
        print(json.dumps(view.document(hosts.records, now, after), indent=2))
    else:
        print(f"{cfg.queue_manager.name} on {cfg.storage.path}:")
        for line in view.table(hosts.records, now, after, hosts.problems):
            print(line)
    return view.exit_code(hosts.records, now, after)


def cluster_lines(cfg: Config, now: float) -> List[str]:
    """The list's table for `mqguard status` of a pair (nothing when the records cannot be read)."""
    hosts, _ = load(cfg, now)
    if hosts is None or not hosts.records:
        return []
    return view.table(hosts.records, now, view.stale_after(cfg.health.poll_interval))
