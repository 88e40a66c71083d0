"""mqguard preflight against simulated good and bad hosts (kernel values, mount options, UID mismatch)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from mqguard import config
from mqguard.preflight import kernel
from mqguard.preflight.checks import FAIL, PASS, WARN, Finding, Host, setgid_directories
from mqguard.preflight.run import exit_code, run_preflight
from tests.conftest import ROOT, Harness
from tests.sim import mqsim

GOOD: Dict[str, str] = {
    "kernel/shmmni": "4096", "kernel/shmall": "18446744073692774399", "kernel/shmmax": "18446744073692774399",
    "kernel/sem": "32000\t1024000000\t500\t32000", "fs/file-max": "9223372036854775807",
    "kernel/pid_max": "4194304", "kernel/threads-max": "127704", "net/ipv4/tcp_keepalive_time": "300",
}
NFS_OPTS = "rw,nosuid,nodev,relatime - nfs4 fs-0123.efs.eu-west-1.amazonaws.com:/ rw,vers=4.1,rsize=1048576,hard,timeo=600,retrans=2,noresvport"


def proc_sys(tmp: Path, **changes: str) -> str:
    root = tmp / "proc-sys"
    for key, value in {**GOOD, **{k.replace("__", "/"): v for k, v in changes.items()}}.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(value + "\n")
    return str(root)


def mountinfo(tmp: Path, path: str, tail: str = NFS_OPTS) -> str:
    mi = tmp / "mountinfo"
    mi.write_text(f"36 25 0:32 / {path} {tail}\n")
    return str(mi)


def by(findings: List[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


MQM = pwd.getpwnam("mqm")


@pytest.fixture
def sim() -> Iterator[Harness]:
    """The simulator on storage the MQ user can reach (pytest's own tmp is root's, mode 0700): preflight makes its
    storage checks as the MQ user."""
    base = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="mqguard-preflight-test-"))
    base.chmod(0o755)

    class _Plain:
        path = str(base / "shared")

        def thaw(self) -> None:
            pass

    os.makedirs(_Plain.path)
    os.chown(_Plain.path, MQM.pw_uid, MQM.pw_gid)
    h = Harness(base, _Plain())  # type: ignore[arg-type]
    if os.path.exists("/usr/bin/python3"):  # an interpreter the MQ user may run (amqmfsck runs as mqm)
        mqsim.install(h.bindir, h.prefix, host="host1", interpreter="/usr/bin/python3")
    Path(h.ctl, "calls.log").touch()
    os.chmod(Path(h.ctl, "calls.log"), 0o666)  # the simulator logs every call, mqm's included
    try:
        yield h
    finally:
        h.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_kernel_values_below_ibms_minimums_fail_and_the_sysctl_file_raises_only_those(tmp_path: Path) -> None:
    root = proc_sys(tmp_path, kernel__shmmni="1024", kernel__sem="250 32000 32 64", net__ipv4__tcp_keepalive_time="7200")
    findings = [f for f in run_preflight(None, Host(proc_sys=root), image=True) if f.check.startswith(("kernel", "net"))]
    assert by(findings, "kernel.shmmni").verdict == FAIL and by(findings, "kernel.sem").verdict == FAIL
    assert by(findings, "kernel.shmall").verdict == PASS
    assert by(findings, "net.ipv4.tcp_keepalive_time").verdict == WARN  # advice, not a minimum
    text = kernel.sysctl_file(root)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    # raise-only: semmsl 250 and semmns 32000 are above IBM's 32 and 4096 and stay; semmni 64 goes up to 128
    assert lines == ["kernel.shmmni = 4096", "kernel.sem = 250 32000 32 128", "net.ipv4.tcp_keepalive_time = 300"]


def test_a_host_whose_values_exceed_ibms_is_left_untouched(tmp_path: Path) -> None:
    """Issue 15 item 12: the AMI's old sysctl file LOWERED RHEL 9's defaults (e.g. kernel.shmall, kernel.sem)."""
    root = proc_sys(tmp_path)
    out = subprocess.run([sys.executable, "-m", "mqguard", "preflight", "--write-sysctl", str(tmp_path / "30-ibmmq.conf"),
                          "--proc-sys", root], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    written = (tmp_path / "30-ibmmq.conf").read_text()
    assert [line for line in written.splitlines() if not line.startswith("#")] == []
    assert "nothing to change" in written


def test_a_good_host_passes_and_exits_0(sim: Harness, tmp_path: Path) -> None:
    sim.create_by_hand()
    cfg = config.load(str(sim.configure(storage={"fstypes": "nfs4"}, queue_manager={"run_as": "mqm"})))
    os.chown(cfg.queue_manager.data_dir, MQM.pw_uid, MQM.pw_gid)
    units, polkit = tmp_path / "units", tmp_path / "polkit"
    units.mkdir()
    polkit.mkdir()
    for unit in ("mqguard.service", "mq@.service", "mq-prepare@.service"):
        (units / unit).write_text((ROOT / "systemd" / unit).read_text())
    (polkit / "50-mqguard.rules").write_text("x")
    host = Host(proc_sys=proc_sys(tmp_path), mountinfo=mountinfo(tmp_path, sim.efs.path), unit_dirs=[str(units)],
                polkit_dirs=[str(polkit)])
    findings = run_preflight(cfg, host)
    bad = [str(f) for f in findings if f.verdict == FAIL]
    # the unit's limits come from a systemd that does not run here: the only check allowed to be unsure
    assert bad == [] and exit_code(findings) == 0, "\n".join(bad)
    assert by(findings, "EFS mount").verdict == PASS and by(findings, "setgid dirs").verdict == PASS
    assert by(findings, "amqmfsck").verdict == PASS and by(findings, "data owner").verdict == PASS
    assert by(findings, "MQ root").verdict == PASS
    assert not [n for n in os.listdir(sim.efs.path) if n.startswith("amqmfsck")], "amqmfsck -x removed its files"
    # crtmqm by hand gave no TuningParameters: IBM asks for FileLockHeartBeatLen >= 15 on EFS (issue 24 item 5)
    beat = by(findings, "lock heartbeat")
    assert beat.verdict == WARN and "FileLockHeartBeatLen unset" in beat.detail and "=15" in beat.fix


def test_uid_mismatch_soft_mount_and_missing_units_fail(sim: Harness, tmp_path: Path) -> None:
    sim.create_by_hand()
    cfg = config.load(str(sim.configure(storage={"fstypes": "nfs4"}, queue_manager={"run_as": "mqm"})))
    os.chown(cfg.queue_manager.data_dir, 4321, 4321)  # written by another host's mqm
    soft = NFS_OPTS.replace("hard", "soft")
    host = Host(proc_sys=proc_sys(tmp_path), mountinfo=mountinfo(tmp_path, sim.efs.path, soft),
                unit_dirs=[str(tmp_path / "none")], polkit_dirs=[str(tmp_path / "none")])
    findings = run_preflight(cfg, host)
    assert by(findings, "data owner").verdict == FAIL and "4321" in by(findings, "data owner").detail
    assert by(findings, "EFS mount").verdict == FAIL and "soft" in by(findings, "EFS mount").detail
    assert by(findings, "mq-prepare@.service").verdict == FAIL and by(findings, "polkit rule").verdict == FAIL
    assert exit_code(findings) == 1
    missing = NFS_OPTS.replace(",noresvport", "")
    host.mountinfo = mountinfo(tmp_path, sim.efs.path, missing)
    efs = by(run_preflight(cfg, host), "EFS mount")
    assert efs.verdict == WARN and "noresvport" in efs.detail


def test_an_unmounted_storage_path_fails_with_the_fix(sim: Harness, tmp_path: Path) -> None:
    cfg = config.load(str(sim.configure(storage={"fstypes": "nfs4"})))
    empty = tmp_path / "mi"
    empty.write_text("")
    findings = run_preflight(cfg, Host(proc_sys=proc_sys(tmp_path), mountinfo=str(empty)))
    efs = by(findings, "EFS mount")
    assert efs.verdict == FAIL and "not a mount point" in efs.detail and "fstab" in efs.fix


@pytest.mark.parametrize("uid,verdict", [(936, PASS), (1001, WARN)])
def test_mqm_uid_at_or_above_1000_is_a_warning(uid: int, verdict: str) -> None:
    fake = pwd.struct_passwd(("mqm", "x", uid, uid, "", "/var/mqm", "/bin/sh"))
    assert by(run_preflight(None, Host(lookup_user=lambda name: fake), image=True), "mqm user").verdict == verdict


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the check switches to the MQ user")
def test_the_storage_is_checked_as_the_mq_user_not_as_root(sim: Harness) -> None:
    """Issue 24 item 9: a root-owned EFS root passed because the check ran as root; MQ runs as mqm."""
    owner = (MQM.pw_uid, MQM.pw_gid)
    root_owned = Path(sim.tmp) / "root-owned"
    root_owned.mkdir(mode=0o755)
    found = setgid_directories(str(root_owned), owner, "mqm")[0]
    assert found.verdict == FAIL and "the MQ user (mqm)" in found.detail and "Permission denied" in found.detail
    assert setgid_directories(sim.efs.path, owner, "mqm")[0].verdict == PASS
    assert not [n for n in os.listdir(sim.efs.path) if n.startswith(".mqguard-preflight")], "nothing left behind"


def test_nolock_and_local_lock_mounts_fail(sim: Harness, tmp_path: Path) -> None:
    """Issue 24 item 9: nolock/local_lock= make file locks host-local (another host could start the queue manager)."""
    cfg = config.load(str(sim.configure(storage={"fstypes": "nfs4"})))
    for opts, verdict in ((NFS_OPTS + ",nolock", FAIL), (NFS_OPTS + ",local_lock=posix", FAIL),
                          (NFS_OPTS + ",local_lock=none", PASS)):
        host = Host(proc_sys=proc_sys(tmp_path), mountinfo=mountinfo(tmp_path, sim.efs.path, opts))
        efs = by(run_preflight(cfg, host), "EFS mount")
        assert efs.verdict == verdict, (opts, efs)
        if verdict == FAIL:
            assert "stay on this host" in efs.detail


def test_multi_instance_with_mq_root_on_the_storage_fails() -> None:
    from mqguard.preflight.checks import mq_root

    assert mq_root("/MQHA/var-mqm", "/MQHA", multi_instance=True)[0].verdict == FAIL
    assert mq_root("/MQHA", "/MQHA", multi_instance=True)[0].verdict == FAIL
    assert mq_root("/var/mqm", "/MQHA", multi_instance=True)[0].verdict != FAIL
    assert mq_root("/MQHA/var-mqm", "/MQHA", multi_instance=False)[0].verdict != FAIL


RACER = """
import os, sys, time
storage, victim, until = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
while time.monotonic() < until:
    for name in os.listdir(storage):
        if name.startswith(".mqguard-preflight"):
            try:
                os.rename(os.path.join(storage, name), os.path.join(storage, "moved-" + name))
                os.symlink(victim, os.path.join(storage, name))
            except OSError:
                pass
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="needs root and a python3 "
                    "the MQ user may run: the attacker runs as mqm")
def test_a_racing_mq_user_cannot_steer_preflights_setgid_check_onto_roots_file(sim: Harness) -> None:
    """Security round 3 HIGH 2: preflight (run by an admin, as root) made a predictable directory on the storage and
    chowned/chmodded it by path; an mqm process swapped it for a symlink and won the chmod in 24 of 110 runs."""
    victim = Path(sim.tmp) / "victim"
    victim.write_text("root's secret\n")
    victim.chmod(0o600)
    racer = subprocess.Popen(["setpriv", "--reuid=mqm", "--regid=mqm", "--init-groups", "/usr/bin/python3", "-c",
                              RACER, sim.efs.path, str(victim), "20"])
    try:
        for _ in range(60):
            setgid_directories(sim.efs.path, (MQM.pw_uid, MQM.pw_gid), "mqm")
    finally:
        racer.kill()
        racer.wait()
    st = victim.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600), "root's file was changed through a link"
