"""``mqguard pause | resume | switchover | drill``: ask the running daemon over its control socket."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, Optional

from mqguard.base.exitcodes import EX_OK, EX_UNHEALTHY, EX_USAGE
from mqguard.config import Config
from mqguard.config.values import duration
from mqguard.serve.control import ControlOp, NotRunning, ask
from mqguard.supervisor.model import Drill

MAX_REASON = 500


def run_control(cfg: Config, args: argparse.Namespace) -> int:
    path = cfg.control.socket
    op = args.command
    extra = {}
    timeout = 30.0
    if op == ControlOp.PAUSE:
        try:
            seconds = duration(1, 366 * 86400.0)(args.duration)
        except ValueError as exc:
            print(f"mqguard pause: --for {args.duration!r}: expected {exc}", file=sys.stderr)
            return EX_USAGE
        if len(args.reason) > MAX_REASON:
            print(f"mqguard pause: --reason is longer than {MAX_REASON} characters", file=sys.stderr)
            return EX_USAGE
        extra = {"seconds": seconds, "reason": args.reason}
    elif op == ControlOp.SWITCHOVER:
        extra = {"force": bool(args.force)}
        qm = cfg.queue_manager
        # ending (stop_timeout, escalating), waiting for the other host (stop_timeout), a new standby (start_timeout)
        timeout = 4 * qm.stop_timeout + qm.start_timeout + 60
        if not args.yes:  # what it would do, from the daemon (or why not), then the question
            code = _ask_first(cfg, path, extra)
            if code is not None:
                return code
    elif op == ControlOp.DRILL:
        extra = {"kind": args.kind}
        if not args.yes and not confirmed(args.kind, cfg.queue_manager.name):
            print("mqguard drill: not confirmed; nothing done (use --yes to skip the question)", file=sys.stderr)
            return EX_UNHEALTHY
    progress = _step if op == ControlOp.SWITCHOVER else None
    try:
        ok, message = ask(path, op, timeout, on_progress=progress, **extra)
    except NotRunning as exc:
        print(f"mqguard {op}: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    except PermissionError:
        print(f"mqguard {op}: permission denied: cannot use {path} (root and members of group "
              f"{cfg.control.group} may)", file=sys.stderr)
        return EX_UNHEALTHY
    except OSError as exc:
        print(f"mqguard {op}: no answer from mqguard on {path}: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    print(message if ok else f"mqguard {op}: {message}", file=sys.stdout if ok else sys.stderr)
    return EX_OK if ok else EX_UNHEALTHY


def _step(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def _ask_first(cfg: Config, path: str, extra: Dict[str, Any]) -> Optional[int]:
    """None to go on; else the exit code (refused by the daemon, or not confirmed)."""
    try:
        ok, would = ask(path, ControlOp.SWITCHOVER, 30.0, check=True, **extra)
    except NotRunning as exc:
        print(f"mqguard switchover: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    except OSError as exc:
        print(f"mqguard switchover: no answer from mqguard on {path}: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    if not ok:
        print(f"mqguard switchover: {would}", file=sys.stderr)
        return EX_UNHEALTHY
    if not confirmed_text(f"This switchover will {would}."):
        print("mqguard switchover: not confirmed; nothing done (use --yes to skip the question)", file=sys.stderr)
        return EX_UNHEALTHY
    return None


WHAT_DRILLS_DO = {  # the question asked before a drill (the daemon's answer, once accepted, is DRILL_SAYS)
    Drill.CRASH: "kill -9 the execution controller of queue manager {qm} on this host",
    Drill.STOP: "end queue manager {qm} on this host with endmqm -i (mqguard treats it as a failure)",
    Drill.UNHEALTHY: "report this instance Unhealthy to Auto Scaling now; the group will replace it",
}


def confirmed(kind: str, qm: str) -> bool:
    return confirmed_text(f"This drill will {WHAT_DRILLS_DO[Drill(kind)].format(qm=qm)}.")


def confirmed_text(what: str) -> bool:
    """Ask on the terminal; anything but "yes" (or no terminal at all) is a no."""
    print(f"{what} Type yes to go on: ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline() if sys.stdin is not None and sys.stdin.isatty() else ""
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() == "yes"
