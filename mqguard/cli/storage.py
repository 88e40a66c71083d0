"""``mqguard preflight --storage``: measure, print (or --json), clean up on every exit path; exit 0 when no check
fails, 1 otherwise, 64 for bad arguments (docs/real-mq.md, "Is my EFS fast enough?")."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any, List, Optional

from mqguard.base import privileges
from mqguard.base.exitcodes import EX_OK, EX_UNHEALTHY, EX_USAGE
from mqguard.config import Config
from mqguard.efs.statedir import UnsafePath, allowed_owners
from mqguard.efs.storage import check_mount
from mqguard.preflight import efs_settings, stall
from mqguard.preflight import storage as st


def _seconds(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 1 <= value <= st.MAX_SECONDS else None


class _Progress:
    """One line on stderr that says what is measured and how long it still takes (a long operation)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase = ""
        self.said = 0.0

    def __call__(self, phase: str, left: float) -> None:
        now = time.monotonic()
        if phase != self.phase or (self.tty and now - self.said >= 1.0):
            self.phase, self.said = phase, now
            line = f"measuring {phase}: {max(0.0, left):.0f} s left"
            print(f"\r{line:<70}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.phase:
            print("\r" + " " * 72 + "\r", end="", file=sys.stderr, flush=True)


IMDS_DEADLINE = 2.0  # is this an EC2 instance? (IMDSv2 token + one read)


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt  # SIGTERM as SIGINT: the files are removed on the way out


def run_storage_check(cfg: Optional[Config], args: argparse.Namespace) -> int:
    seconds = _seconds(args.seconds)
    if seconds is None:
        print(f"mqguard preflight: --seconds {args.seconds!r}: expected a number from 1 to {st.MAX_SECONDS:.0f}",
              file=sys.stderr)
        return EX_USAGE
    if cfg is not None:
        privileges.drop_to(cfg.queue_manager.run_as)  # as root: measure as the MQ user (EFS squashes root)
        path = cfg.storage.path
        mount = check_mount(path, cfg.storage.fstypes)
        if not mount.ok:
            print(f"mqguard preflight: {path} is not the mounted storage: {mount.detail}", file=sys.stderr)
            return EX_UNHEALTHY
        owners = allowed_owners(cfg.queue_manager.run_as)
    else:
        path = os.path.abspath(args.path)
        owners = allowed_owners()
    signal.signal(signal.SIGTERM, _stop)
    progress = _Progress()
    live = stall.Liveness()

    def stalled(phase: str, blocked: float) -> None:
        progress.done()
        print(f"mqguard preflight: FAIL the storage stopped answering: one operation ({phase}) has not returned "
              f"for {blocked:.0f} s (a hung EFS mount or NFS server?). Nothing was changed; the check's own "
              f"directory under {path}/.mqguard/storage-check/ may remain: remove it once the storage answers.",
              file=sys.stderr, flush=True)
        os._exit(EX_UNHEALTHY)  # the blocked call waits in the kernel: no cleanup can run past it

    stall.watch_for_stall(live, st.STALL_SECONDS, stalled)
    try:
        check = st.StorageCheck(path, owners, seconds, progress=progress, mount_point=cfg is not None,
                                liveness=live)
    except (UnsafePath, OSError) as exc:
        print(f"mqguard preflight: cannot make the check's directory under {path}/.mqguard: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    try:
        results = check.run()
    except KeyboardInterrupt:
        progress.done()
        print("mqguard preflight: interrupted; the check's files are removed", file=sys.stderr)
        return EX_UNHEALTHY
    except OSError as exc:
        progress.done()
        print(f"mqguard preflight: the storage failed during the check: {exc}", file=sys.stderr)
        return EX_UNHEALTHY
    finally:
        check.close()
        live.finish()
    progress.done()
    checks: List[st.Check] = st.checks_for(results)
    if cfg is not None:
        checks += _aws(cfg, path, expected=cfg.health.report.value == "autoscaling")
    est = st.estimate(results)
    if args.json:
        doc: Any = {"checks": [c.to_json() for c in checks], "estimate": est,
                    "seconds": round(results.seconds, 1), "bytes_written": results.bytes_written}
        print(json.dumps(doc, indent=2))
    else:
        print(st.render(path, checks, est, results))
    return EX_UNHEALTHY if any(c.verdict == st.FAIL for c in checks) else EX_OK


def _aws(cfg: Config, path: str, expected: bool) -> List[st.Check]:
    """The file system's throughput mode and burst credits, through the instance role (optional, read-only).
    "On AWS" is IMDS answering, whatever the report mode (report = log keeps the DAEMON off AWS's APIs; this
    command is run by an operator). Off AWS nothing is said of them, unless report = autoscaling expected AWS."""
    from mqguard.aws.autoscaling import make_client
    from mqguard.aws.imds import Imds

    fs_id = efs_settings.filesystem_id(path)
    imds = Imds(cfg.aws.imds_url)
    try:
        imds.get("meta-data/instance-id", within=IMDS_DEADLINE)
    except Exception as exc:  # no IMDS here: not on AWS (or its metadata service is off)
        if not expected:
            return []
        why = f"IMDS did not answer ({type(exc).__name__}: {str(exc)[:120]}): not checked"
        return [st.Check("throughput_mode", st.WARN, None, "", why),
                st.Check("burst_credit_balance", st.WARN, None, "B", why)]
    try:
        region = cfg.aws.region or imds.region()
        efs = make_client(region, cfg.aws.endpoint_url, imds, "efs")
        cloudwatch = make_client(region, cfg.aws.endpoint_url, imds, "cloudwatch")
    except Exception as exc:  # no IMDS, no credentials: nothing to ask with
        why = f"AWS cannot be asked ({type(exc).__name__}: {str(exc)[:120]}): not checked"
        return [st.Check("throughput_mode", st.WARN, None, "", why),
                st.Check("burst_credit_balance", st.WARN, None, "B", why)]
    return efs_settings.aws_checks(fs_id, efs, cloudwatch, time.time())
