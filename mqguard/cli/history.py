"""``mqguard history``: every host's events on EFS as episodes a person reads at 3 a.m.,
or as one JSON document; ``--advise`` turns them into tuning advice."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List, Optional

from mqguard.base import privileges
from mqguard.base.durations import format_duration
from mqguard.base.exitcodes import EX_OK, EX_UNHEALTHY, EX_USAGE
from mqguard.config import Config
from mqguard.config.values import duration
from mqguard.efs.statedir import allowed_owners
from mqguard.efs.storage import check_mount
from mqguard.history.advice import Advice, Current, advise
from mqguard.history.episodes import Episode, Start, episodes, starts
from mqguard.history.events import iso
from mqguard.history.reader import History, read_history

_YEAR = 366 * 86400.0


def _seconds(flag: str, text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    try:
        value = duration(0, _YEAR)(text)
    except ValueError as exc:
        raise SystemExit(f"mqguard history: {flag} {text!r}: expected {exc}") from None
    return float(value) if isinstance(value, (int, float)) else None


def run_history(cfg: Config, args: argparse.Namespace, now: Optional[float] = None) -> int:
    now = time.time() if now is None else now
    try:
        since_s = _seconds("--since", args.since)
        asg_grace = _seconds("--asg-grace", args.asg_grace)
        hook_timeout = _seconds("--hook-timeout", args.hook_timeout)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return EX_USAGE
    try:
        reader = privileges.drop_to(cfg.queue_manager.run_as)
    except (KeyError, OSError) as exc:
        print(f"mqguard history: cannot read as {cfg.queue_manager.run_as}: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    as_whom = f" (as {reader})" if reader else ""
    mount = check_mount(cfg.storage.path, cfg.storage.fstypes)
    if not mount.ok:  # the directory under a bare mount point is not the shared history
        print(f"mqguard history: cannot read the history: {mount.detail}", file=sys.stderr)
        return EX_UNHEALTHY
    try:
        hist = read_history(cfg.storage.path, allowed_owners(cfg.queue_manager.run_as), now,
                            since=None if since_s is None else now - since_s)
    except OSError as exc:
        print(f"mqguard history: cannot read {cfg.storage.path}/.mqguard/history{as_whom}: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    eps, sts = episodes(hist.events), starts(hist.events)
    if args.advise:
        h, q = cfg.health, cfg.queue_manager
        current = Current(h.grace_period, q.start_timeout, q.stop_timeout, q.lock_wait, h.restart_attempts,
                          h.poll_interval, asg_grace, hook_timeout)
        ended = [e.detail for e in hist.events if e.event == "ended"]
        advice = advise(eps, sts, ended, current)
        if args.json:
            print(json.dumps({"advice": [a.to_json() for a in advice], "truncated": hist.truncated}, indent=2))
        else:
            print(render_advice(advice) + "".join(f"\ntruncated: {t}" for t in hist.truncated))
        return EX_OK
    if args.json:
        print(json.dumps(document(hist, eps, sts), indent=2))
    else:
        print(render(hist, eps, sts))
    return EX_OK


def document(hist: History, eps: List[Episode], sts: List[Start]) -> Dict[str, Any]:
    return {"events": [e.to_json() for e in hist.events], "episodes": [e.to_json() for e in eps],
            "starts": [{"host": s.host, "time": iso(s.time), "seconds": round(s.seconds, 3), "became": s.became}
                       for s in sts],
            "skipped_lines": hist.skipped_lines, "problems": hist.problems, "truncated": hist.truncated}


def _dur(seconds: Optional[float]) -> str:
    if seconds is None:
        return "ongoing"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def render(hist: History, eps: List[Episode], sts: List[Start]) -> str:
    lines: List[str] = []
    hosts = sorted({e.host for e in hist.events})
    lines.append(f"{len(hist.events)} events from {len(hosts)} host(s): {', '.join(hosts)}" if hosts
                 else "no history yet")
    for n, ep in enumerate(eps, 1):
        lines.append("")
        lines.extend(render_episode(n, ep))
    if sts:
        lines.append("")
        lines.append("starts (strmqm to running or standby, log replay included):")
        lines.extend(f"  {iso(st.time)}  {st.host}  {_dur(st.seconds):>9}  -> {st.became}" for st in sts[-10:])
    if hist.skipped_lines or hist.problems or hist.truncated:
        lines.append("")
        if hist.skipped_lines:
            lines.append(f"{hist.skipped_lines} line(s) skipped: not sane events (malformed, unknown, out of range)")
        lines.extend(f"refused: {p}" for p in hist.problems)
        lines.extend(f"truncated: {t}" for t in hist.truncated)
    return "\n".join(lines)


def render_episode(n: int, ep: Episode) -> List[str]:
    """One line for the episode, then one per phase: durations aligned, the slowest marked."""
    if ep.outage_seconds == 0 and ep.standby_only:
        outage = "no outage (another host stayed active)"
    else:
        outage = f"no active instance for {_dur(ep.outage_seconds)}" if ep.ended else "not over yet"
    lines = [f"#{n} {ep.kind} on {ep.host}, {iso(ep.started)} -> {iso(ep.ended) if ep.ended else 'now'}; {outage}"]
    secs = ep.phase_seconds()
    slowest = max(range(len(secs) - 1), key=lambda i: secs[i]) if len(secs) > 1 else -1
    width = max(len(p.host) for p in ep.phases)
    for i, (p, s) in enumerate(zip(ep.phases, secs)):
        took = "" if i == len(secs) - 1 else _dur(s)
        mark = "  <- slowest" if i == slowest and s > 0 else ""
        lines.append(f"  {iso(p.time)[11:23]}  {p.host:<{width}}  {p.event:<18} {took:>9}  "
                     f"{p.detail[:80]}{mark}".rstrip())
    return lines


# where each advised setting lives in the configuration (the group's settings are CloudFormation's, not ours)
SECTIONS = {"grace_period": "health", "restart_attempts": "health", "start_timeout": "queue_manager",
            "stop_timeout": "queue_manager", "lock_wait": "queue_manager"}


def render_advice(advice: List[Advice]) -> str:
    def val(a: Advice, v: Optional[float]) -> str:
        if v is None:
            return "-"
        return f"{v:g}" if a.setting.endswith("attempts") else format_duration(v)

    width = max(len(a.setting) for a in advice)
    lines = [f"{'setting':<{width}}  {'current':>9}  {'advice':>9}  {'':<18}  because"]
    for a in advice:
        lines.append(f"{a.setting:<{width}}  {val(a, a.current):>9}  {val(a, a.recommended):>9}  {a.verdict:<18}  "
                     f"{a.because}")
    changes: Dict[str, List[str]] = {}
    for a in advice:
        if a.setting in SECTIONS and a.recommended is not None and a.verdict in ("raise", "lower", "set"):
            changes.setdefault(SECTIONS[a.setting], []).append(f"{a.setting} = {val(a, a.recommended)}")
    if changes:
        lines += ["", "# paste into /etc/mqguard/conf.d/50-tuning.conf, then: mqguard validate-config && systemctl "
                      "reload mqguard ([health] applies at once; [queue_manager] at the next restart). With the kit, "
                      "set the stack's parameters instead: an instance's own files go with the instance."]
        for section, settings in changes.items():
            lines += [f"[{section}]", *settings]
    return "\n".join(lines)
