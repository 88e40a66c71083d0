"""``[hooks] on_state_change``: a program run on every change of mqguard_state (docs/operating.md).

    PROGRAM NEW_STATE OLD_STATE QMGR
    environment: MQGUARD_REASON (UNTRUSTED text: it may quote MQ's output),
                 MQGUARD_ROLE (active | standby | none), MQGUARD_INSTANCE_ID (when known),
                 MQGUARD_HOOK_RUN (a token marking this run's processes), plus PATH, LANG,
                 TZ, HOME and AWS_* settings; mqguard's static AWS credentials only with
                 [hooks] pass_aws_credentials = true

Never through a shell (the states are argv words, not code), never on the
supervision loop: one runner thread runs one hook at a time, in order; changes
that arrive while one runs are coalesced to the latest (its OLD_STATE is the
state the previous run announced, so the chain the hook sees has no gaps). A
hook still running after ``timeout`` is killed with its process group, and so is
every process that still carries this run's MQGUARD_HOOK_RUN token (children
that left the group with setsid: a cgroup of its own would need privileges
mqguard does not have). The
result (ok, failed, timeout, error) is logged and counted; it never changes
supervision.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional

from mqguard.base.runner import CommandRunner
from mqguard.base.untrusted import loggable

log = logging.getLogger(__name__)

_PASS = ("PATH", "LANG", "TZ", "HOME", "LC_ALL")
_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
RUN_MARK_VAR = "MQGUARD_HOOK_RUN"  # names the variable; its value is a random mark per run


@dataclass(frozen=True)
class Change:
    new: str
    old: str
    reason: str
    role: str


def hook_environment(change: Change, instance_id: Optional[str], base: Mapping[str, str],
                     credentials: bool = False, token: str = "") -> Dict[str, str]:
    env = {k: v for k, v in base.items()
           if k in _PASS or (k.startswith("AWS_") and (credentials or k not in _SECRETS))}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(MQGUARD_REASON=change.reason[:1000], MQGUARD_ROLE=change.role)
    if instance_id:
        env["MQGUARD_INSTANCE_ID"] = instance_id
    if token:
        env[RUN_MARK_VAR] = token
    return env


def kill_marked(token: str, proc: str = "/proc") -> int:
    """SIGKILL every process whose environment carries ``MQGUARD_HOOK_RUN=token``; returns how many."""
    want = f"{RUN_MARK_VAR}={token}".encode()
    killed = 0
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"{proc}/{pid}/environ", "rb") as fh:
                environ = fh.read(1 << 20).split(b"\0")
        except OSError:
            continue
        if want in environ:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


class StateHook:
    def __init__(self, program: str, timeout: float, qmgr: str, instance_id: Callable[[], Optional[str]],
                 count: Callable[[str], None], base_env: Optional[Mapping[str, str]] = None,
                 pass_aws_credentials: bool = False) -> None:
        self.pass_aws_credentials = pass_aws_credentials
        self.program = program
        self.timeout = timeout
        self.qmgr = qmgr
        self.instance_id = instance_id
        self.count = count
        self.base_env = base_env if base_env is not None else dict(os.environ)
        self.runner = CommandRunner()
        self._cond = threading.Condition()
        self._pending: Optional[Change] = None
        self._announced: Optional[str] = None  # NEW_STATE of the last run: the next run's OLD_STATE
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="state-hook", daemon=True)
        self._thread.start()

    def notify(self, new: str, old: str, reason: str, role: str) -> None:
        """From the loop: never blocks."""
        with self._cond:
            if self._pending is not None:
                old = self._pending.old  # coalesced: keep the state the hook last heard of
            self._pending = Change(new, old, reason, role)
            self._cond.notify()

    def stop(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._pending is None:
                    return
                change, self._pending = self._pending, None
            if self._announced is not None:
                change = Change(change.new, self._announced, change.reason, change.role)
            if change.new == change.old:
                continue  # coalescing came back to where the hook already is
            self._announced = change.new
            self.count(self.run(change))

    def run(self, change: Change) -> str:
        argv = [self.program, change.new, change.old, self.qmgr]
        # the one command runner: argv, its own process group killed at the timeout, output capped
        token = secrets.token_hex(8)
        res = self.runner.run(argv, self.timeout, ok_codes=range(256),
                              env=hook_environment(change, self.instance_id(), self.base_env,
                                                   self.pass_aws_credentials, token))
        if res.error:
            log.error("on_state_change %s could not run: %s", self.program, res.error)
            return "error"
        if res.timed_out:
            stray = kill_marked(token)  # what left the process group (setsid) is ended too
            log.error("on_state_change %s %s %s: killed after %.0fs%s", self.program, change.new, change.old,
                      self.timeout, f" (and {stray} process(es) it had started in other sessions)" if stray else "")
            return "timeout"
        tail = loggable(res.output.strip()[-500:])
        said = f": {tail}" if tail else ""
        if res.returncode == 0:
            log.info("on_state_change %s %s %s: ok in %.2fs%s", self.program, change.new, change.old, res.duration,
                     said)
            return "ok"
        log.error("on_state_change %s %s %s: exit %s in %.2fs%s", self.program, change.new, change.old,
                  res.returncode, res.duration, said)
        return "failed"
