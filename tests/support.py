"""What tests, the demo, the benchmark and the soak share: free ports, bounded waits, the one way to find or
kill simulator processes (scoped to one installation, never by name across the machine), and ``Harness``, one
simulated host. No pytest here: ``make demo`` runs these in a plain virtual environment."""

from __future__ import annotations

import grp
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from tests.peers import efs as efs_mod
from tests.sim import mqsim

ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set = set()  # ports given to tests in this process


def free_port() -> int:
    """A free loopback port never handed out before in this process: the kernel may offer a just-closed
    port again, and two parts of one test (mqguard's HTTP and the simulator's listener) must not share one."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise AssertionError("no fresh free port in 100 tries")


def wait_until(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def started_from(bindir: str) -> List[int]:
    """Processes of the simulator installed in ``bindir``: a command line naming a program there, or (a bare
    argv[0], MQ 9.2's style) an executable there. Never a process of another installation or test."""
    want = os.path.join(bindir, "").encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            exe = os.fsencode(os.readlink(f"/proc/{entry}/exe")) if not any(a.startswith(want) for a in args[:2]) \
                else want
        except OSError:
            continue
        if exe.startswith(want):
            pids.append(int(entry))
    return pids


def kill_controllers(bindir: str) -> None:
    """Kill every simulated MQ process started from ``bindir`` (and nothing else)."""
    for pid in started_from(bindir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _own_group() -> str:
    return grp.getgrgid(os.getegid()).gr_name


class Harness:
    """One simulated host: MQ simulator + config + ``mqguard run`` as a subprocess."""

    def __init__(self, tmp: Path, efs: efs_mod.FakeEfs, qmgr: str = "QM1", host: str = "host1") -> None:
        self.tmp = tmp
        self.efs = efs
        self.qmgr = qmgr
        self.bindir = str(tmp / f"bin-{host}")
        self.prefix = str(tmp / f"var-{host}")
        # every host of one queue manager serves the same listener port (crtmqm -p fixed it), as on AWS
        self.port = getattr(efs, "listener_port", None) or free_port()
        efs.listener_port = self.port  # type: ignore[attr-defined]
        self.ctl = mqsim.install(self.bindir, self.prefix, host=host)
        self.mqsc_dir = tmp / "mqsc.d"
        self.mqsc_dir.mkdir(exist_ok=True)
        self.conf = tmp / f"mqguard-{host}.conf"
        self.log = tmp / f"mqguard-{host}.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.command: List[str] = [sys.executable, "-m", "mqguard"]  # how `mqguard run` is started
        self.sections: Dict[str, Dict[str, str]] = {
            "queue_manager": {
                "name": qmgr,
                "mq_bin_dir": self.bindir,
                "run_as": "",
                "data_dir": f"{efs.path}/qmgrs",
                "log_dir": f"{efs.path}/logs",
                "mqsc_dir": str(self.mqsc_dir),
                "listener_port": str(self.port),
                "stop_on_exit": "never",
                "start_timeout": "60s",
                "stop_timeout": "10s",
            },
            # probe_timeout: generous, so a loaded CI machine's slow fsync is not "bad storage"
            "storage": {"path": efs.path, "fstypes": efs_mod.FSTYPE, "probe_timeout": "2s", "mount_timeout": "30s"},
            "health": {"poll_interval": "1s", "grace_period": "5s", "command_timeout": "3s", "report": "log"},
            "metrics": {"listen": "off"},
            "logging": {"level": "debug"},
            "control": {"socket": str(tmp / f"ctl-{host}" / "mqguard.sock"), "group": _own_group()},
        }

    def configure(self, **sections: Dict[str, str]) -> Path:
        for name, values in sections.items():
            self.sections.setdefault(name, {}).update(values)
        text = ""
        for name, values in self.sections.items():
            text += f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
        self.conf.write_text(text)
        return self.conf

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT)
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
        env.pop("NOTIFY_SOCKET", None)
        return env

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mqguard", *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> Harness:
        self.configure()
        self._log_fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [*self.command, "run", "--config", str(self.conf)],
            env=self.env(), stdout=self._log_fh, stderr=subprocess.STDOUT,
        )
        return self

    def get(self, path: str, timeout: float = 5) -> Tuple[int, bytes]:
        """GET ``path`` from this mqguard's HTTP endpoint ([metrics] listen): (status, body)."""
        port = self.sections["metrics"]["listen"].rsplit(":", 1)[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 20, after: int = 0) -> re.Match[str]:
        """Wait for ``pattern`` in the log (searching from character ``after``)."""
        rx = re.compile(pattern)

        def found() -> Optional[re.Match[str]]:
            if self.proc is not None and self.proc.poll() is not None:
                m = rx.search(self.log_text(), after)
                if m:
                    return m
                raise AssertionError(f"mqguard exited ({self.proc.returncode}) before {pattern!r}:\n{self.log_text()}")
            return rx.search(self.log_text(), after)

        try:
            return wait_until(found, timeout, pattern)  # type: ignore[return-value]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- mqguard log ---\n{self.log_text()[-6000:]}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log_fh.close()

    def knob(self, name: str, value: str = "") -> None:
        Path(self.ctl, name).write_text(value)

    def unknob(self, name: str) -> None:
        Path(self.ctl, name).unlink(missing_ok=True)

    def calls(self, cmd: Optional[str] = None) -> List[Dict[str, object]]:
        return mqsim.calls(self.ctl, cmd)

    def controllers(self) -> List[int]:
        return mqsim.controller_pids(self.qmgr, self.bindir)

    def prepare_root(self) -> None:
        """crtmqdir -s -f, as MQ's installer does on a host whose /var/mqm is local (the simulated root starts
        empty, like an EFS mounted over /var/mqm)."""
        res = subprocess.run([f"{self.bindir}/crtmqdir", "-s", "-f"], capture_output=True, text=True, timeout=30)
        assert res.returncode in (0, 10), res.stdout + res.stderr  # 10: done with warnings (a fresh root)

    def create_by_hand(self, *extra: str) -> None:
        """What an operator (or a dead earlier host) did: crtmqdir, the parents, crtmqm -md -ld -p on the EFS."""
        self.prepare_root()
        for sub in ("qmgrs", "logs"):
            os.makedirs(f"{self.efs.path}/{sub}", exist_ok=True)
        res = subprocess.run([f"{self.bindir}/crtmqm", "-md", f"{self.efs.path}/qmgrs", "-ld", f"{self.efs.path}/logs",
                              "-p", str(self.port), *extra, self.qmgr], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr

    def dspmq(self) -> str:
        res = subprocess.run([f"{self.bindir}/dspmq", "-n", "-m", self.qmgr], capture_output=True, text=True, timeout=10)
        return res.stdout + res.stderr

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.efs.thaw()
        kill_controllers(self.bindir)


