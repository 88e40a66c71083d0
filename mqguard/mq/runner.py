"""The one way mqguard runs an external command.

Argument lists only (never a shell), a timeout on every call, both output
streams kept, the caller's list of acceptable exit codes, the configured user,
and an environment without systemd's notify/watchdog variables (so MQ's
processes never talk to systemd on mqguard's behalf).
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

# Variables a child must not inherit: with them MQ's processes could send
# READY/WATCHDOG in mqguard's name.
_STRIPPED_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
# How long we wait for a killed child to be reaped before giving up on it (a
# child stuck in uninterruptible I/O on a dead NFS server may never go).
_REAP_GRACE = 2.0


@dataclass(frozen=True)
class CommandResult:
    argv: Sequence[str]
    returncode: Optional[int]  # None when it timed out or could not start
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    error: str = ""  # why it could not run at all

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else "?"

    @property
    def output(self) -> str:
        """Both streams, as MQ tools print to either."""
        return "\n".join(s for s in (self.stdout.strip("\n"), self.stderr.strip("\n")) if s)

    def ok(self, codes: Sequence[int] = (0,)) -> bool:
        return not self.timed_out and not self.error and self.returncode in codes

    def describe(self) -> str:
        cmd = " ".join(self.argv)
        if self.error:
            return f"{cmd}: could not run: {self.error}"
        if self.timed_out:
            return f"{cmd}: timed out after {self.duration:.1f}s"
        first = self.output.splitlines()[:3]
        tail = (": " + " | ".join(line.strip() for line in first)) if first else ""
        return f"{cmd}: exit {self.returncode}{tail}"


@dataclass
class RunAs:
    user: str
    uid: int
    gid: int
    groups: List[int]
    home: str

    @classmethod
    def lookup(cls, user: str) -> Optional[RunAs]:
        """None when ``user`` is empty or is already who we are."""
        if not user:
            return None
        pw = pwd.getpwnam(user)  # KeyError when missing: a configuration problem
        if pw.pw_uid == os.geteuid():
            return None
        return cls(user, pw.pw_uid, pw.pw_gid, os.getgrouplist(user, pw.pw_gid), pw.pw_dir)


Observer = Callable[[CommandResult, bool], None]  # (result, acceptable?)


@dataclass
class CommandRunner:
    run_as: Optional[RunAs] = None
    base_env: Optional[Mapping[str, str]] = None
    observers: List[Observer] = field(default_factory=list)

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ if self.base_env is None else self.base_env)
        for key in _STRIPPED_ENV:
            env.pop(key, None)
        if self.run_as is not None:
            env.update(HOME=self.run_as.home, USER=self.run_as.user, LOGNAME=self.run_as.user)
        return env

    def run(
        self,
        argv: Sequence[str],
        timeout: float,
        stdin: Optional[str] = None,
        ok_codes: Sequence[int] = (0,),
    ) -> CommandResult:
        """Run ``argv`` and return its result; never raises for the command's failure."""
        result = self._run(list(argv), timeout, stdin)
        ok = result.ok(ok_codes)
        log.log(logging.DEBUG if ok else logging.INFO, "ran %s", result.describe())
        for observe in self.observers:
            observe(result, ok)
        return result

    def _run(self, argv: List[str], timeout: float, stdin: Optional[str]) -> CommandResult:
        start = time.monotonic()
        kwargs: Dict[str, object] = {}
        if self.run_as is not None:
            kwargs.update(user=self.run_as.uid, group=self.run_as.gid, extra_groups=self.run_as.groups)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(),
                cwd="/",
                close_fds=True,
                start_new_session=True,  # its own process group, so a timeout kills all of it
                text=True,
                errors="replace",
                **kwargs,  # type: ignore[call-overload]
            )
        except OSError as exc:
            return CommandResult(argv, None, "", "", time.monotonic() - start, error=str(exc))
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
            return CommandResult(argv, proc.returncode, out, err, time.monotonic() - start)
        except subprocess.TimeoutExpired:
            out, err = _kill_and_collect(proc)
            return CommandResult(argv, None, out, err, time.monotonic() - start, timed_out=True)


def _kill_and_collect(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill the command's process group; wait a bounded time for it.

    A process stuck in uninterruptible I/O may outlive SIGKILL. Then we stop
    waiting and let a background thread reap it, rather than hang ourselves.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        out, err = proc.communicate(timeout=_REAP_GRACE)
        return out or "", err or ""
    except subprocess.TimeoutExpired:
        log.warning("pid %d (%s) did not die after SIGKILL; leaving it to a reaper thread", proc.pid, proc.args)
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        return "", ""
