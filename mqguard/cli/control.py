"""``mqguard pause | resume | switchover``: ask the running daemon over its control socket."""

from __future__ import annotations

import argparse
import sys

from mqguard.base.exitcodes import EX_OK, EX_UNHEALTHY, EX_USAGE
from mqguard.config import Config
from mqguard.config.values import duration
from mqguard.serve.control import ControlOp, NotRunning, ask

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
        # ending (stop_timeout), waiting for the other host (stop_timeout), a new standby (start_timeout)
        timeout = 2 * qm.stop_timeout + qm.start_timeout + 60
    try:
        ok, message = ask(path, op, timeout, **extra)
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
