"""The one way mqguard runs an external command.

Argument lists only (never a shell), a timeout on every call, both output
streams kept (bounded: the first and last ``OUTPUT_LIMIT`` bytes of each), the
caller's list of acceptable exit codes, the configured user, and an
environment built from an allow-list: MQ gets what it needs (PATH, the C
locale, whose English output mqguard parses, time zone, its own MQ*/AMQ*
variables), never mqguard's AWS credentials or systemd's notify/watchdog
variables.
"""

from __future__ import annotations

import logging
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mqguard.base.untrusted import loggable

log = logging.getLogger(__name__)

# What a child inherits from mqguard's environment: nothing else. In particular
# not AWS_* (credentials), NOTIFY_SOCKET/WATCHDOG_* (MQ's processes could send
# READY/WATCHDOG in mqguard's name) or PYTHON* (mqguard's own interpreter setup).
_ENV_NAMES = frozenset({"PATH", "TZ", "TMPDIR"})  # LANG and LC_* are not passed: the C locale is set instead
_ENV_PREFIXES = ("MQ", "AMQ")
# Each stream keeps its first and its last OUTPUT_LIMIT bytes: MQ's real output
# is a few kilobytes; a runaway command must not grow mqguard's memory.
OUTPUT_LIMIT = 64 * 1024
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

    @property
    def outcome(self) -> str:
        """How it ended, in two words: "exit 71", "timed out", or why it could not run."""
        if self.error:
            return self.error
        return "timed out" if self.timed_out else f"exit {self.returncode}"

    def describe(self) -> str:
        cmd = " ".join(self.argv)
        if self.error:
            return f"{cmd}: could not run: {self.error}"
        if self.timed_out:
            return f"{cmd}: timed out after {self.duration:.1f}s"
        first = self.output.splitlines()[:3]
        tail = (": " + " | ".join(loggable(line) for line in first)) if first else ""
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
    _running: Dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _refusing: bool = field(default=False, repr=False)

    def cancel_running(self) -> int:
        """Kill every command running now and refuse new ones until ``resume()``; returns how many.

        At shutdown a start job's strmqm must not still run when endmqm is sent.
        """
        with self._lock:
            self._refusing = True
            procs = list(self._running.values())
        for proc in procs:
            _kill(proc)
        return len(procs)

    def refusing(self) -> bool:
        with self._lock:
            return self._refusing

    def resume(self) -> None:
        with self._lock:
            self._refusing = False

    def environment(self) -> Dict[str, str]:
        source = os.environ if self.base_env is None else self.base_env
        env = {k: v for k, v in source.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}
        env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(LANG="C", LC_ALL="C")  # mqguard parses MQ's English output (dspmq, dspmqver, runmqsc)
        if self.run_as is not None:
            env.update(HOME=self.run_as.home, USER=self.run_as.user, LOGNAME=self.run_as.user)
        return env

    def run(
        self,
        argv: Sequence[str],
        timeout: float,
        stdin: Optional[str] = None,
        ok_codes: Sequence[int] = (0,),
        env: Optional[Mapping[str, str]] = None,
    ) -> CommandResult:
        """Run ``argv`` and return its result; never raises for the command's failure.

        ``env`` replaces the allow-listed environment (for programs that are not MQ's).
        """
        result = self._run(list(argv), timeout, stdin, env)
        ok = result.ok(ok_codes)
        log.log(logging.DEBUG if ok else logging.INFO, "ran %s", result.describe())
        for observe in self.observers:
            observe(result, ok)
        return result

    def _run(self, argv: List[str], timeout: float, stdin: Optional[str],
             env: Optional[Mapping[str, str]] = None) -> CommandResult:
        start = time.monotonic()
        if self.refusing():
            return CommandResult(argv, None, "", "", 0.0, error="cancelled: mqguard is stopping")
        kwargs: Dict[str, object] = {}
        if self.run_as is not None:
            kwargs.update(user=self.run_as.uid, group=self.run_as.gid, extra_groups=self.run_as.groups)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else self.environment(),
                cwd="/",
                close_fds=True,
                start_new_session=True,  # its own process group, so a timeout kills all of it
                **kwargs,  # type: ignore[call-overload]
            )
        except OSError as exc:
            return CommandResult(argv, None, "", "", time.monotonic() - start, error=str(exc))
        with self._lock:
            self._running[proc.pid] = proc
        try:
            if stdin is not None:
                _feed(proc.stdin, stdin.encode("utf-8"))
            out, err = Capture(), Capture()
            finished = _drain(proc, out, err, start + timeout)
            cancelled = self.refusing()
            if finished and not cancelled:
                return CommandResult(argv, proc.returncode, out.text(), err.text(), time.monotonic() - start)
            _kill(proc)
            _drain(proc, out, err, time.monotonic() + _REAP_GRACE)
            if cancelled:
                return CommandResult(argv, None, out.text(), err.text(), time.monotonic() - start,
                                     error="cancelled: mqguard is stopping")
            return CommandResult(argv, None, out.text(), err.text(), time.monotonic() - start, timed_out=True)
        finally:
            with self._lock:
                self._running.pop(proc.pid, None)


class Capture:
    """Keeps the first and the last ``limit`` bytes of a stream, and counts what it drops."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            extra = len(self.tail) - self.limit
            if extra > 0:
                del self.tail[:extra]
                self.dropped += extra

    def text(self) -> str:
        gap = f"\n[... {self.dropped} bytes of output omitted ...]\n".encode() if self.dropped else b""
        return bytes(self.head + gap + self.tail).decode("utf-8", "replace")


def _feed(pipe: Optional[IO[bytes]], data: bytes) -> None:
    """Write stdin on a helper thread, so a child that does not read cannot block us."""
    if pipe is None:
        return

    def write() -> None:
        try:
            pipe.write(data)
        except (BrokenPipeError, OSError):
            pass  # the child exited or closed stdin: its exit code tells the rest
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    threading.Thread(target=write, name="cmd-stdin", daemon=True).start()


def _drain(proc: subprocess.Popen[bytes], out: Capture, err: Capture, deadline: float) -> bool:
    """Read both streams until EOF and the process has exited; False at the deadline."""
    streams: List[Tuple[IO[bytes], Capture]] = [(s, c) for s, c in ((proc.stdout, out), (proc.stderr, err)) if s]
    with selectors.DefaultSelector() as sel:
        for stream, capture in streams:
            if not stream.closed:
                sel.register(stream, selectors.EVENT_READ, capture)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's process group.

    A process stuck in uninterruptible I/O may outlive SIGKILL: then a
    background thread reaps it later, rather than mqguard hanging on it.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(_REAP_GRACE)
    except subprocess.TimeoutExpired:
        log.warning("pid %d (%s) did not die after SIGKILL; leaving it to a reaper thread", proc.pid, proc.args)
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
