"""The RPM and the unit inside the real systemd (252, PID 1 of a namespace).

One guest is booted for the module (tests/system/nsboot.sh): the built RPM is
installed there with rpm, and mqguard runs as mqguard.service against the MQ
simulator. The tests run in order, like an operator's day: start, status,
restart, upgrade, a bad config, a wedged loop, and finally a host shutdown.
Everything (namespace, mounts, processes, files) is removed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from tests.conftest import free_port, wait_until
from tests.sim import mqsim

ROOT = Path(__file__).resolve().parents[2]
BOOT = ROOT / "tests" / "system" / "nsboot.sh"
QMGR = "QM1"


def _why_not() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, rpm --root)"
    for tool in ("unshare", "nsenter", "rpmbuild", "rpm"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not Path("/lib/systemd/systemd").exists():
        return "systemd is not installed"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def build_rpm(release: int, dest: Path) -> Path:
    res = subprocess.run(["make", "-s", "rpm", f"RELEASE={release}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    built = next((ROOT / "build" / "rpmbuild" / "RPMS" / "noarch").glob(f"mqguard-*-{release}.noarch.rpm"))
    return Path(shutil.copy(built, dest))


class Guest:
    """A booted systemd; ``run`` executes a command inside it."""

    def __init__(self, work: Path, shared: List[Path]) -> None:
        self.work = work
        self.state = work / "state"
        self.state.mkdir()
        self.console = open(work / "console.log", "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", str(BOOT), str(self.state),
             *map(str, shared)],
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.pid = self._find_init()
        self.wait_for(lambda: self.run("systemctl", "is-system-running").stdout.strip() in ("running", "degraded"),
                      60, "the guest to boot")

    def _find_init(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
            for pid in res.stdout.split():
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"guest exited: {(self.work / 'console.log').read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError("systemd did not start in the namespace")

    def run(self, *argv: str, input: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", "--", *argv], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *argv: str, input: Optional[str] = None) -> str:
        res = self.run(*argv, input=input)
        assert res.returncode == 0, f"{argv}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def write(self, path: str, text: str) -> None:
        self.ok("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", path, input=text)

    def show(self, *props: str) -> Dict[str, str]:
        out = self.ok("systemctl", "show", "mqguard", "-p", ",".join(props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    @staticmethod
    def wait_for(pred: Callable[[], object], timeout: float, what: str) -> None:
        wait_until(pred, timeout, what, interval=0.25)

    def poweroff(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.run("systemctl", "poweroff", "--no-block")
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.console.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    # Under /var/tmp: on the host's root file system, so visible through the overlay.
    work = Path(f"/var/tmp/mqguard-systest-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(mode=0o755)
    shared = work / "shared"
    efs = work / "efs"
    shared.mkdir()
    efs.mkdir()
    g: Optional[Guest] = None
    try:
        rpm1 = build_rpm(1, work)
        rpm2 = build_rpm(2, work)
        port = free_port()
        mqsim.install(str(shared / "bin"), str(shared / "var-mqm"), host="guest1", listener_port=port)
        g = Guest(work, [shared, efs])
        g.rpm1, g.rpm2, g.shared, g.efs, g.port = rpm1, rpm2, shared, efs, port  # type: ignore[attr-defined]
        yield g
    finally:
        if g is not None:
            g.poweroff()
        subprocess.run(["pkill", "-KILL", "-f", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def amqzxma0(g: Guest) -> List[int]:
    """amqzxma0 PIDs as the host sees them (the guest's PID namespace is below ours)."""
    return [p for p in mqsim.controller_pids(QMGR) if str(g.shared) in Path(f"/proc/{p}/cmdline").read_text()]


def status_line(g: Guest) -> str:
    out = g.run("systemctl", "status", "mqguard", "--no-pager").stdout
    m = re.search(r'Status: "([^"]*)"', out)
    return m.group(1) if m else ""


def test_rpm_installs_and_runs_from_installed_files(guest: Guest) -> None:
    g = guest
    out = g.ok("rpm", "-i", "--nodeps", str(g.rpm1))  # type: ignore[attr-defined]
    assert "error" not in out.lower()
    # %post byte-compiled the tree with the system Python (before anything ran from it)
    compiled = g.ok("find", "/usr/lib/mqguard/mqguard/supervisor/__pycache__", "-name", "daemon.*.pyc")
    assert compiled.strip(), "no bytecode after install"
    assert g.ok("mqguard", "--version").strip() == "mqguard 0.1.0"
    where = g.ok("/usr/bin/python3", "-sE", "-c",
                 "import sys; sys.path.insert(0, '/usr/lib/mqguard'); import mqguard, boto3; "
                 "print(mqguard.__file__, boto3.__file__)")
    assert where.split() == ["/usr/lib/mqguard/mqguard/__init__.py", "/usr/lib/mqguard/boto3/__init__.py"]
    files = g.ok("rpm", "-ql", "mqguard").splitlines()
    for path in ("/usr/bin/mqguard", "/usr/lib/systemd/system/mqguard.service", "/etc/mqguard/mqguard.conf",
                 "/etc/mqguard/conf.d", "/etc/mqguard/mqsc.d/10-example.mqsc", "/usr/share/man/man8/mqguard.8.gz"):
        assert path in files
    assert "Type=notify" in g.ok("systemctl", "cat", "mqguard")
    verify = g.run("systemd-analyze", "verify", "mqguard.service")
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    assert g.ok("man", "-w", "8", "mqguard").strip() == "/usr/share/man/man8/mqguard.8.gz"


def test_start_shows_status_and_logs_to_the_journal(guest: Guest) -> None:
    g = guest
    g.write("/etc/mqguard/conf.d/50-systest.conf", (
        "[queue_manager]\n"
        f"name = {QMGR}\nmq_bin_dir = {g.shared}/bin\nrun_as =\n"  # type: ignore[attr-defined]
        f"data_dir = {g.efs}/qmgrs\nlog_dir = {g.efs}/logs\n"  # type: ignore[attr-defined]
        f"listener_port = {g.port}\nstop_timeout = 10s\n"  # type: ignore[attr-defined]
        f"[storage]\npath = {g.efs}\nfstypes = ext4,xfs,nfs4\nprobe_timeout = 2s\n"  # type: ignore[attr-defined]
        "[health]\npoll_interval = 1s\nreport = log\n"
        f"[metrics]\nlisten = 127.0.0.1:{free_port()}\n"
    ))
    assert g.ok("mqguard", "validate-config").startswith("configuration OK")
    g.ok("systemctl", "start", "mqguard")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "Status: running")
    assert status_line(g).endswith("healthy")
    journal = g.ok("journalctl", "-u", "mqguard", "--no-pager", "-o", "cat")
    assert f"{QMGR}: running" in journal
    fields = g.run("journalctl", "-u", "mqguard", f"QMGR={QMGR}", "MQGUARD_STATE=running", "--no-pager", "-o", "cat")
    assert f"{QMGR}: running" in fields.stdout, "structured journal fields QMGR= and MQGUARD_STATE="
    assert g.ok("mqguard", "status").startswith(f"queue manager {QMGR} running")
    assert len(amqzxma0(g)) == 1


def test_restart_leaves_the_queue_manager_running(guest: Guest) -> None:
    g = guest
    before = amqzxma0(g)
    main_before = g.show("MainPID")["MainPID"]
    g.ok("systemctl", "restart", "mqguard")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "running after restart")
    assert g.show("MainPID")["MainPID"] != main_before
    assert amqzxma0(g) == before, "the queue manager must survive systemctl restart mqguard"
    assert "adopted the running queue manager" in g.ok("journalctl", "-u", "mqguard", "--no-pager", "-o", "cat")


def test_rpm_upgrade_leaves_the_queue_manager_running(guest: Guest) -> None:
    g = guest
    before = amqzxma0(g)
    main_before = g.show("MainPID")["MainPID"]
    g.ok("sh", "-c", "echo '# edited by the operator' >> /etc/mqguard/mqguard.conf")
    g.ok("rpm", "-U", "--nodeps", str(g.rpm2))  # type: ignore[attr-defined]
    assert g.ok("rpm", "-q", "mqguard").strip() == "mqguard-0.1.0-2.noarch"
    g.wait_for(lambda: g.show("MainPID")["MainPID"] not in ("0", main_before), 60, "restart by the upgrade")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "running after upgrade")
    assert amqzxma0(g) == before, "the queue manager must survive an RPM upgrade"
    assert "# edited by the operator" in g.ok("cat", "/etc/mqguard/mqguard.conf"), "%config(noreplace)"


def test_bad_config_fails_once_with_78_and_does_not_loop(guest: Guest) -> None:
    g = guest
    g.write("/etc/mqguard/conf.d/60-typo.conf", "[health]\ngrace_periode = 60s\n")
    g.run("systemctl", "restart", "mqguard")
    g.wait_for(lambda: g.show("ActiveState")["ActiveState"] == "failed", 30, "the unit to fail")
    time.sleep(7)  # longer than RestartSec=5s: a restart loop would have begun
    props = g.show("ActiveState", "ExecMainStatus", "NRestarts", "Result")
    assert props == {"ActiveState": "failed", "ExecMainStatus": "78", "NRestarts": "0", "Result": "exit-code"}, props
    journal = g.ok("journalctl", "-u", "mqguard", "--no-pager", "-o", "cat", "-n", "30")
    assert "grace_periode" in journal and "unknown key" in journal
    assert len(amqzxma0(g)) == 1, "a config error must not touch the queue manager"
    g.ok("rm", "/etc/mqguard/conf.d/60-typo.conf")
    g.ok("systemctl", "reset-failed", "mqguard")
    g.ok("systemctl", "start", "mqguard")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "running again")


def test_a_wedged_loop_is_killed_by_the_watchdog_and_restarted(guest: Guest) -> None:
    g = guest
    g.write("/etc/systemd/system/mqguard.service.d/50-watchdog.conf", "[Service]\nWatchdogSec=3s\n")
    # a dspmq that hangs for an hour under a one-hour command_timeout wedges the cycle for real
    g.write("/etc/mqguard/conf.d/70-wedge.conf", "[queue_manager]\nstart_timeout = 2h\n[health]\ncommand_timeout = 1h\n")
    g.ok("systemctl", "daemon-reload")
    g.ok("systemctl", "restart", "mqguard")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "running")
    restarts = int(g.show("NRestarts")["NRestarts"])
    knob = Path(g.shared, "bin", "ctl", "dspmq.hang")  # type: ignore[attr-defined]
    knob.write_text("")
    wedged = time.monotonic()
    try:
        # killed by the watchdog, then waiting RestartSec=5s before the restart
        g.wait_for(lambda: g.show("SubState")["SubState"] == "auto-restart", 30, "the watchdog to fire")
    finally:
        knob.unlink()
        subprocess.run(["pkill", "-KILL", "-f", f"{g.shared}/bin/dspmq"], capture_output=True)  # type: ignore[attr-defined]
    print(f"\nFIGURE wedge to watchdog kill (WatchdogSec=3s): {time.monotonic() - wedged:.1f} s", file=sys.stderr)
    assert g.show("Result")["Result"] == "watchdog"
    g.wait_for(lambda: int(g.show("NRestarts")["NRestarts"]) > restarts, 30, "the restart")
    journal = g.ok("journalctl", "-u", "mqguard", "--no-pager", "-o", "cat")
    assert "mqguard.service: Watchdog timeout" in journal
    g.ok("rm", "/etc/systemd/system/mqguard.service.d/50-watchdog.conf", "/etc/mqguard/conf.d/70-wedge.conf")
    g.ok("systemctl", "daemon-reload")
    g.ok("systemctl", "restart", "mqguard")
    g.wait_for(lambda: status_line(g).startswith(f"queue manager {QMGR} running;"), 60, "running after the watchdog")


def test_host_shutdown_ends_the_queue_manager_cleanly_first(guest: Guest) -> None:
    g = guest
    assert len(amqzxma0(g)) == 1
    ctl = Path(g.shared, "bin", "ctl")  # type: ignore[attr-defined]
    before = len(mqsim.calls(str(ctl), "endmqm"))
    assert g.poweroff() is not None
    ends = mqsim.calls(str(ctl), "endmqm")[before:]
    assert [e["argv"] for e in ends] == [["-w", QMGR]], ends
    state = Path(g.efs, "qmgrs", QMGR, "qmstatus.json").read_text()  # type: ignore[attr-defined]
    assert '"ended_normally"' in state
    assert amqzxma0(g) == []
    print(f"\nFIGURE rpm size: {os.path.getsize(g.rpm1) / 1e6:.2f} MB", file=sys.stderr)  # type: ignore[attr-defined]
