"""``mqguard status``: ask the running daemon over HTTP, print its view."""

from __future__ import annotations

import json
import os
import pwd
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Tuple

from mqguard.base import privileges
from mqguard.base.exitcodes import EX_DEGRADED, EX_OK, EX_UNHEALTHY
from mqguard.base.untrusted import load_json, loggable
from mqguard.config import Config
from mqguard.supervisor.model import State

UNHEALTHY_STATES = {State.FAILED, State.STOPPING}


def status_url(cfg: Config) -> str:
    if cfg.metrics.listen is None:
        raise ValueError("metrics.listen = off: the daemon serves no /status to ask")
    host, port = cfg.metrics.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapping a wildcard to loopback
    return f"http://[{host}]:{port}/status" if ":" in host else f"http://{host}:{port}/status"


MAX_ANSWER = 1024 * 1024


class StatusError(Exception):
    """The daemon could not be asked, or its answer makes no sense; the message says which."""


def fetch(url: str, timeout: float = 3.0) -> Dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            code, body = resp.status, resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:  # 503 before the first cycle still has a body
        code, body = exc.code, exc.read(MAX_ANSWER)
    except OSError as exc:
        raise StatusError(f"no mqguard daemon answers at {url} ({exc}); is it running? "
                          "(systemctl status mqguard)") from None
    try:
        doc = load_json(body)
    except ValueError:
        raise StatusError(f"something answers at {url}, but not with mqguard's status (HTTP {code}, "
                          f"{len(body)} bytes that are not JSON: {loggable(body.decode('utf-8', 'replace'), 60)}); "
                          "is another program using metrics.listen?") from None
    if not isinstance(doc, dict) or "state" not in doc:
        raise StatusError(f"something answers at {url} with JSON that is not mqguard's status (HTTP {code}); "
                          "is another program using metrics.listen?")
    return doc


def exit_code(doc: Dict[str, Any]) -> int:
    if doc.get("healthy"):
        return EX_OK
    if doc.get("state") in UNHEALTHY_STATES:
        return EX_UNHEALTHY
    return EX_DEGRADED


def _aws_error(err: Any) -> str:
    if not isinstance(err, dict):
        return "none"
    return f"{err.get('operation')}: {err.get('code')} since {err.get('since')} ({err.get('message')})"


def render(doc: Dict[str, Any]) -> str:
    rows: Tuple[Tuple[str, Any], ...] = (
        ("state", doc.get("state")),
        ("queue manager", f"{doc.get('qmgr')} ({doc.get('qmgr_status') or 'status unknown'})"),
        ("storage", f"{doc.get('storage_path')}: {'ok' if doc.get('storage_ok') else 'BAD'} "
                    f"({doc.get('storage_detail')})"),
        ("listener", f"{doc.get('listener_port')}: "
                     + {True: "ok", False: "BAD", None: "not probed"}[doc.get("listener_ok")]),
        ("bad since", doc.get("bad_since") or "-"),
        ("restarts", doc.get("restarts")),
        ("reported", "Unhealthy reported to Auto Scaling" if doc.get("reported_unhealthy") else "no"),
        ("report path", doc.get("report_check") or "not checked yet"),
        ("AWS error", _aws_error(doc.get("aws_error"))),
        ("restart budget", doc.get("restart_budget_remaining")),
        ("last cycle", doc.get("last_cycle")),
        ("version", doc.get("version")),
    )
    lines = [doc.get("summary") or doc.get("state", "?"), ""]
    lines += [f"  {k:<14} {v}" for k, v in rows]
    errors = doc.get("mq_errors")
    if doc.get("state") != "running" and isinstance(errors, list) and errors:
        lines += ["", "  MQ's last messages (error logs and FDC files):"]
        for err in errors[-5:]:
            if isinstance(err, dict):
                lines.append(f"    {loggable(str(err.get('time', '')), 30)}  {loggable(str(err.get('id', '')), 20)}  "
                             f"{loggable(str(err.get('text', '')), 160)}")
    return "\n".join(lines)


CLUSTER_READ = 5.0  # seconds the pair's records may take to read (a hung EFS never hangs status)


def cluster_head(cfg: Config) -> List[str]:
    """For a pair: `mqguard list`'s table, read as the MQ user in a bounded child (nothing when unreadable)."""
    from mqguard.cli.cluster import cluster_lines

    owner = None
    if os.geteuid() == 0 and cfg.queue_manager.run_as:
        try:
            pw = pwd.getpwnam(cfg.queue_manager.run_as)
            owner = (pw.pw_uid, pw.pw_gid)
        except KeyError:
            return []
    ok, text = privileges.as_user(owner, lambda: (True, "\n".join(cluster_lines(cfg, time.time()))), CLUSTER_READ)
    return text.splitlines() + [""] if ok and text else []


def run_status(cfg: Config, as_json: bool) -> int:
    # a pair: the cluster first (also when this host's daemon does not answer: the other host's state is what
    # the person needs then)
    head = cluster_head(cfg) if cfg.queue_manager.multi_instance and not as_json else []
    if head:
        print("\n".join(head), flush=True)
    try:
        doc = fetch(status_url(cfg))
    except (ValueError, StatusError) as exc:
        print(f"mqguard status: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    print(json.dumps(doc, indent=2, sort_keys=True) if as_json else render(doc))
    return exit_code(doc)
