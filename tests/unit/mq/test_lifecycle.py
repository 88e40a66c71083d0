"""prepare / start / MQSC / end, against the MQ simulator (real processes)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from mqguard import config
from mqguard.base.runner import CommandResult, CommandRunner
from mqguard.efs.statedir import allowed_owners
from mqguard.mq.control import MqControl, StartResult, classify_strmqm
from mqguard.mq.lifecycle import Lifecycle
from mqguard.mq.prepare import CreateLock, Preparation, PrepareError, create_lock_path
from mqguard.mq.service import ChildService
from tests.conftest import Harness


def control_for(h: Harness, **qm: str) -> MqControl:
    h.configure(queue_manager=qm) if qm else h.configure()
    cfg = config.load(str(h.conf))
    return MqControl(cfg.queue_manager, cfg.storage.path, CommandRunner(), 5.0)


def lifecycle_for(h: Harness, create: bool = True, lock_timeout: float = 5.0, **qm: str) -> Lifecycle:
    control = control_for(h, **qm)
    preparation = Preparation(control, create, lock_timeout, allowed_owners())
    return Lifecycle(control, str(h.mqsc_dir), ChildService(control, preparation))


def test_fresh_storage_creates_with_md_ld_starts_and_applies_mqsc(sim: Harness) -> None:
    (sim.mqsc_dir / "20-b.mqsc").write_text("DEFINE QLOCAL(B.Q) REPLACE\n")
    (sim.mqsc_dir / "10-a.mqsc").write_text("DEFINE QLOCAL(A.Q) REPLACE\nDEFINE CHANNEL(APP.SVRCONN) CHLTYPE(SVRCONN)\n")
    (sim.mqsc_dir / "readme.txt").write_text("not MQSC")
    lc = lifecycle_for(sim)
    assert lc.prepare() == f"created (data in {sim.efs.path}/qmgrs/QM1)"
    crt = sim.calls("crtmqm")
    assert crt[0]["argv"][:6] == ["-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs", "-p", str(sim.port)]
    assert crt[0]["argv"][6] == "-ii" and crt[0]["argv"][8:] == ["QM1"]
    assert lc.start().result is StartResult.STARTED
    summary = lc.apply_mqsc()
    assert [Path(p).name for p in summary.applied] == ["10-a.mqsc", "20-b.mqsc"] and summary.failed == []
    applied = Path(sim.efs.path, "qmgrs", "QM1", "mqsc.log").read_text().splitlines()
    assert applied == ["DEFINE QLOCAL(A.Q) REPLACE", "DEFINE CHANNEL(APP.SVRCONN) CHLTYPE(SVRCONN)", "DEFINE QLOCAL(B.Q) REPLACE"]


def test_known_queue_manager_is_just_started(sim: Harness) -> None:
    lc = lifecycle_for(sim)
    lc.prepare()
    assert lc.prepare().startswith("known")
    assert len(sim.calls("crtmqm")) == 1 and sim.calls("addmqinf") == []


def test_data_on_storage_but_not_registered_uses_addmqinf_never_crtmqm(sim: Harness) -> None:
    lifecycle_for(sim).prepare()  # host1 creates it
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        lc2 = lifecycle_for(other)
        assert lc2.prepare().startswith("registered")
        assert other.calls("crtmqm") == []
        add = other.calls("addmqinf")[0]["argv"]
        # Prefix: MQ's own root as dspmqver says (issue 24 item 12: it was a hard-coded /var/mqm)
        assert add == ["-s", "QueueManager", "-v", "Name=QM1", "-v", "Directory=QM1", "-v", f"Prefix={other.prefix}",
                       "-v", f"DataPath={sim.efs.path}/qmgrs/QM1"]
        assert lc2.start().result is StartResult.STARTED
    finally:
        other.cleanup()


def test_mangled_directory_for_dotted_names(sim: Harness) -> None:
    lifecycle_for(sim, name="APP.QM/1").prepare()
    other = Harness(sim.tmp, sim.efs, qmgr="APP.QM/1", host="host2")  # type: ignore[arg-type]
    try:
        lc2 = lifecycle_for(other, name="APP.QM/1")
        assert lc2.prepare().startswith("registered")
        assert "Directory=APP!QM&1" in other.calls("addmqinf")[0]["argv"]
    finally:
        other.cleanup()


def test_no_data_and_create_false_fails_clearly(sim: Harness) -> None:
    with pytest.raises(PrepareError, match="create = false"):
        lifecycle_for(sim, create=False).prepare()
    assert sim.calls("crtmqm") == []


def test_create_lock_serialises_two_instances(sim: Harness) -> None:
    lock = create_lock_path(sim.efs.path)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    # Another "instance" (a separate process: POSIX locks are per process) holds the lock.
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT);"
         "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)", lock],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(PrepareError, match="still held"):
            lifecycle_for(sim, lock_timeout=1.0).prepare()
        assert sim.calls("crtmqm") == []
    finally:
        holder.kill()
        holder.wait()
    assert lifecycle_for(sim, multi_instance="false").prepare().startswith("created")


def test_second_instance_rechecks_after_waiting_for_the_lock(sim: Harness) -> None:
    """Host2 (a separate process) waits while host1 creates; it then registers, never creates."""
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    other.configure()
    try:
        lc1 = lifecycle_for(sim)
        script = (
            "import sys; from mqguard import config; from mqguard.mq.control import MqControl;"
            "from mqguard.mq.prepare import Preparation; from mqguard.base.runner import CommandRunner;"
            "from mqguard.efs.statedir import allowed_owners; cfg = config.load(sys.argv[1]);"
            "ctl = MqControl(cfg.queue_manager, cfg.storage.path, CommandRunner(), 5.0);"
            "print(Preparation(ctl, True, 10.0, allowed_owners()).run().value)"
        )
        host1 = Preparation(lc1.control, True, 5.0, allowed_owners())
        host1.ensure_root()
        host1._make_parents()
        with CreateLock(sim.efs.path, 5, allowed_owners()):
            proc = subprocess.Popen(["python3", "-c", script, str(other.conf)], stdout=subprocess.PIPE,
                                    text=True, env=other.env())
            time.sleep(0.5)
            assert proc.poll() is None, "host2 must be waiting for the lock"
            assert lc1.control.crtmqm().returncode == 0
        out, _ = proc.communicate(timeout=20)
        assert out.strip() == "registered"
        assert other.calls("crtmqm") == []
    finally:
        other.cleanup()


def test_start_adopts_a_running_queue_manager(sim: Harness) -> None:
    lc = lifecycle_for(sim)
    lc.prepare()
    assert lc.start().result is StartResult.STARTED
    pid = sim.controllers()
    outcome = lc.start()
    assert outcome.result is StartResult.ALREADY_RUNNING and "adopted" in outcome.detail
    assert sim.controllers() == pid
    assert len(sim.calls("strmqm")) == 1


def test_end_escalates_when_controlled_end_hangs(sim: Harness) -> None:
    lc = lifecycle_for(sim)
    lc.prepare()
    lc.start()
    sim.knob("clients.connected")
    start = time.monotonic()
    assert lc.end("active", stop_timeout=1.0)
    assert time.monotonic() - start < 10
    modes = [c["argv"][:-1] for c in sim.calls("endmqm")]
    assert modes == [["-r", "-w"], ["-r", "-i"]]
    assert sim.controllers() == []
    assert "ENDED IMMEDIATELY" in sim.dspmq()


def test_end_when_not_running_is_fine(sim: Harness) -> None:
    lc = lifecycle_for(sim)
    lc.prepare()
    assert lc.end("active", stop_timeout=2.0)
    assert [c["argv"] for c in sim.calls("endmqm")] == [["-r", "-w", "QM1"]]


def test_mqsc_errors_are_logged_not_fatal(sim: Harness) -> None:
    (sim.mqsc_dir / "10-bad.mqsc").write_text("FROB QLOCAL(X)\n")
    (sim.mqsc_dir / "20-good.mqsc").write_text("DEFINE QLOCAL(Y)\n")
    lc = lifecycle_for(sim)
    lc.prepare()
    lc.start()
    summary = lc.apply_mqsc()
    assert [Path(p).name for p in summary.failed] == ["10-bad.mqsc"]
    assert [Path(p).name for p in summary.applied] == ["20-good.mqsc"]


@pytest.mark.parametrize(
    "code,multi,result",
    [
        (0, False, StartResult.STARTED), (5, False, StartResult.ALREADY_RUNNING),
        (30, True, StartResult.STANDBY), (30, False, StartResult.FAILED),
        (31, False, StartResult.ELSEWHERE), (43, True, StartResult.ELSEWHERE), (47, True, StartResult.ELSEWHERE),
        (24, False, StartResult.FAILED), (71, False, StartResult.FAILED), (255, False, StartResult.FAILED),
    ],
)
def test_strmqm_exit_codes(code: int, multi: bool, result: StartResult) -> None:
    res = CommandResult(["strmqm", "QM1"], code, "", "", 0.1)
    assert classify_strmqm(res, multi).result is result


def test_strmqm_timeout_is_marked() -> None:
    res = CommandResult(["strmqm", "QM1"], None, "", "", 300, timed_out=True)
    out = classify_strmqm(res, False)
    assert out.result is StartResult.FAILED and out.timed_out


def test_dspmq_reading_for_garbled_hung_and_unknown(sim: Harness) -> None:
    ctl = control_for(sim)
    r = ctl.dspmq()
    assert r.status is None and "exit 71" in r.error  # MQ's root is not prepared yet
    lifecycle_for(sim).prepare()
    sim.configure(queue_manager={"name": "QM9"})
    r = control_for(sim).dspmq()
    assert r.status is None and "exit 72" in r.error
    sim.configure(queue_manager={"name": "QM1"})
    sim.knob("dspmq.garble")
    r = ctl.dspmq()
    assert r.status is None and "cannot parse" in r.error
    sim.unknob("dspmq.garble")
    sim.knob("dspmq.hang")
    ctl.command_timeout = 0.5
    start = time.monotonic()
    r = ctl.dspmq()
    assert r.status is None and "timed out" in r.error and time.monotonic() - start < 10  # not the hour


def test_mqsc_links_leaving_mqsc_dir_and_foreign_files_are_not_read(sim: Harness, tmp_path: Path) -> None:
    """Root must not read a file for runmqsc that the MQ user could not: a link to a secret is refused."""
    secret = tmp_path / "shadow"
    secret.write_text("DEFINE QLOCAL(SECRET.FROM.SHADOW)\n")
    os.chmod(secret, 0o600)
    os.symlink(secret, sim.mqsc_dir / "10-link.mqsc")
    (sim.mqsc_dir / "15-inside.mqsc").write_text("DEFINE QLOCAL(INSIDE)\n")
    os.symlink(sim.mqsc_dir / "15-inside.mqsc", sim.mqsc_dir / "16-alias.mqsc")  # a link that stays inside is fine
    foreign = sim.mqsc_dir / "20-foreign.mqsc"
    foreign.write_text("DEFINE QLOCAL(FOREIGN)\n")
    os.chown(foreign, 54321, 54321)
    open_to_all = sim.mqsc_dir / "30-world.mqsc"
    open_to_all.write_text("DEFINE QLOCAL(WORLD)\n")
    os.chmod(open_to_all, 0o666)
    lc = lifecycle_for(sim)
    lc.prepare()
    lc.start()
    summary = lc.apply_mqsc()
    assert [Path(p).name for p in summary.applied] == ["15-inside.mqsc", "16-alias.mqsc"]
    assert [Path(p).name for p in summary.failed] == ["10-link.mqsc", "20-foreign.mqsc", "30-world.mqsc"]
    applied = Path(sim.efs.path, "qmgrs", "QM1", "mqsc.log").read_text()
    assert "SECRET" not in applied and "FOREIGN" not in applied and "WORLD" not in applied


# ------------------------------------------------- real IBM MQ (issue 15): each failed before the fix

def test_default_data_and_log_dirs_put_everything_on_the_shared_storage(sim: Harness) -> None:
    """Item 3: without data_dir/log_dir, crtmqm still gets -md and -ld under storage.path."""
    del sim.sections["queue_manager"]["data_dir"], sim.sections["queue_manager"]["log_dir"]
    lc = lifecycle_for(sim)
    assert lc.prepare().startswith("created")
    argv = sim.calls("crtmqm")[0]["argv"]
    assert argv[:4] == ["-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs"]
    assert os.path.isfile(f"{sim.efs.path}/qmgrs/QM1/qm.ini")
    assert f"LogPath={sim.efs.path}/logs/QM1/" in Path(sim.efs.path, "qmgrs", "QM1", "qm.ini").read_text()
    import stat
    assert os.stat(f"{sim.efs.path}/qmgrs").st_mode & 0o7777 == 0o2775  # the parents crtmqm does not make
    assert lc.start().result is StartResult.STARTED
    assert not os.path.exists(f"{sim.prefix}/log/QM1") and stat.S_ISDIR(os.stat(f"{sim.efs.path}/logs/QM1").st_mode)


def test_crtmqm_gets_p_so_the_listener_runs_without_any_mqsc(sim: Harness) -> None:
    """Item 1: nothing listened on 1414 after a create: crtmqm now gets -p listener_port."""
    import socket
    lc = lifecycle_for(sim)
    lc.prepare()
    assert ["-p", str(sim.port)] == sim.calls("crtmqm")[0]["argv"][4:6]
    lc.start()
    socket.create_connection(("127.0.0.1", sim.port), timeout=2).close()


def test_an_empty_mq_root_is_prepared_with_crtmqdir_before_any_other_command(sim: Harness) -> None:
    """Item 4: /var/mqm on an empty file system: crtmqdir -s -f first, no command fails with an FDC."""
    lc = lifecycle_for(sim)
    lc.prepare()
    names = [c["cmd"] for c in sim.calls()]
    assert names[:3] == ["dspmqver", "crtmqdir", "dspmqinf"], names
    assert sim.calls("crtmqdir")[0]["argv"] == ["-s", "-f"]
    errors = Path(sim.prefix, "errors")
    assert not [p for p in errors.iterdir() if p.suffix == ".FDC"]
    lifecycle_for(sim).prepare()
    assert len(sim.calls("crtmqdir")) == 1  # prepared once


def test_a_leftover_directory_gives_qm1_000_and_mqguard_reads_it_back(sim: Harness) -> None:
    """Item 10: crtmqm adds .000 when the directory exists; mqguard reads Directory/DataPath back."""
    os.makedirs(f"{sim.efs.path}/qmgrs/QM1")  # a leftover without qm.ini
    lc = lifecycle_for(sim)
    assert lc.prepare() == f"created (data in {sim.efs.path}/qmgrs/QM1.000)"
    assert lc.control.data_path == f"{sim.efs.path}/qmgrs/QM1.000"
    assert lc.start().result is StartResult.STARTED
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        lc2 = lifecycle_for(other)
        assert lc2.prepare().startswith("registered")
        add = other.calls("addmqinf")[0]["argv"]
        assert "Directory=QM1.000" in add and f"DataPath={sim.efs.path}/qmgrs/QM1.000" in add
    finally:
        other.cleanup()


def test_two_candidate_data_directories_are_refused_not_guessed(sim: Harness) -> None:
    for d in ("QM1", "QM1.000"):
        os.makedirs(f"{sim.efs.path}/qmgrs/{d}")
        Path(sim.efs.path, "qmgrs", d, "qm.ini").write_text("Log:\n")
    with pytest.raises(PrepareError, match="several data directories"):
        lifecycle_for(sim).prepare()
    assert sim.calls("crtmqm") == [] and sim.calls("addmqinf") == []


def test_escalation_keeps_s_on_every_step_of_a_multi_instance_active_and_r_on_a_single() -> None:
    """Items 5 and 6: -s -w, -s -i, -s -p (never a bare -i that ends the standby); -r for a single instance."""
    from mqguard.mq.service import Role, escalation
    assert [m for m, _ in escalation(Role.ACTIVE_MI, 60)] == [["-s", "-w"], ["-s", "-i"], ["-s", "-p"]]
    assert [m for m, _ in escalation(Role.ACTIVE, 60)] == [["-r", "-w"], ["-r", "-i"], ["-r", "-p"]]
    assert [m for m, _ in escalation(Role.STANDBY, 60)] == [["-x"]]


def test_ending_a_busy_multi_instance_active_fails_over_instead_of_ending_the_pair(sim: Harness) -> None:
    """Item 5: long-lived clients make -w run out; the escalation must keep -s so the standby takes over."""
    lc = lifecycle_for(sim, multi_instance="true")
    lc.prepare()
    assert lc.start().result is StartResult.STARTED
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        lc2 = lifecycle_for(other, multi_instance="true")
        lc2.prepare()
        assert lc2.start().result is StartResult.STANDBY
        sim.knob("clients.connected")
        assert lc.end("active_mi", stop_timeout=1.0)
        assert [c["argv"][:-1] for c in sim.calls("endmqm")] == [["-s", "-w"], ["-s", "-i"]]
        wait_for = time.monotonic() + 10
        while time.monotonic() < wait_for and "STATUS(RUNNING)" not in other.dspmq():
            time.sleep(0.1)
        assert "STATUS(RUNNING)" in other.dspmq(), "the standby must have taken over"
    finally:
        other.cleanup()


def test_a_crash_with_lingering_children_is_started_again_at_once(sim: Harness) -> None:
    """Item 7 (no unit): the dead controller's children would fail strmqm with 24; they are killed first."""
    import signal
    sim.knob("children.linger", "30")
    lc = lifecycle_for(sim)
    lc.prepare()
    lc.start()
    os.kill(sim.controllers()[0], signal.SIGKILL)
    time.sleep(0.3)
    assert "ENDED UNEXPECTEDLY" in sim.dspmq()
    outcome = lc.start()
    assert outcome.result is StartResult.STARTED, outcome.detail
    assert [c for c in sim.calls("strmqm")][-1]["argv"] == ["QM1"] and len(sim.calls("strmqm")) == 2


def test_a_start_in_progress_is_adopted_and_waited_for_never_started_again(sim: Harness) -> None:
    """Item 8: a restarted mqguard finds STARTING (log replay): it waits, one strmqm only, then applies MQSC."""
    lc = lifecycle_for(sim)
    lc.prepare()
    sim.knob("strmqm.delay", "3")
    first = subprocess.Popen([f"{sim.bindir}/strmqm", "QM1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "STARTING" not in sim.dspmq() and time.monotonic() < deadline:
            time.sleep(0.05)
        outcome = lc.start()
        assert outcome.result is StartResult.STARTED and "adopted a start in progress" in outcome.detail
        assert first.wait(timeout=10) == 0
        assert len(sim.calls("strmqm")) == 1 and "STATUS(RUNNING)" in sim.dspmq()
    finally:
        first.kill()
        first.wait()


def test_the_parents_are_never_made_on_the_local_disk_when_efs_is_gone(sim: Harness) -> None:
    control = control_for(sim)
    preparation = Preparation(control, True, 5.0, allowed_owners(), mounted=lambda: False)
    with pytest.raises(PrepareError, match="not mounted"):
        preparation.run()
    assert not os.path.exists(control.data_parent) and sim.calls("crtmqm") == []


def test_a_drills_immediate_end_keeps_the_roles_care() -> None:
    from mqguard.mq.service import Role, immediate_end

    assert immediate_end(Role.ACTIVE_MI) == ["-s", "-i"], "without -s the standby ends too (reference: endmqm)"
    assert immediate_end(Role.STANDBY) == ["-x"] and immediate_end(Role.ACTIVE) == ["-r", "-i"]


def test_a_queue_manager_mqguard_creates_gets_file_lock_heartbeat_len_15(sim: Harness) -> None:
    """Issue 24 item 5: IBM asks for FileLockHeartBeatLen >= 15 on EFS (support page "IBM MQ: Considerations for EFS
    on AWS"); crtmqm -ii merges it into the new qm.ini (reference: crtmqm). An operator's own -ii input is kept
    (copied first) and mqguard's value, merged last, wins; the temporary input is removed afterwards."""
    from tests.sim import mqsim

    theirs = sim.tmp / "operator.ini"
    theirs.write_text("Log:\n   LogFilePages=8192\nTuningParameters:\n   FileLockHeartBeatLen=5\n")
    lc = lifecycle_for(sim, crtmqm_options=f"-lc -ii {theirs}", file_lock_heartbeat_len="20")
    lc.prepare()
    ini = mqsim.qm_ini(f"{sim.efs.path}/qmgrs/QM1")
    assert ini["TuningParameters"]["FileLockHeartBeatLen"] == "20"
    assert ini["Log"]["LogFilePages"] == "8192", "the operator's own -ii input still applies"
    argv = sim.calls("crtmqm")[0]["argv"]
    assert argv.count("-ii") == 1 and "-lc" in argv and str(theirs) not in argv
    assert not os.path.exists(argv[argv.index("-ii") + 1]), "the temporary -ii input is removed"


def test_a_registered_queue_manager_without_the_heartbeat_is_named_in_the_log(sim: Harness,
                                                                               caplog: pytest.LogCaptureFixture) -> None:
    sim.create_by_hand()  # crtmqm by hand: no TuningParameters
    lc = lifecycle_for(sim)
    with caplog.at_level("WARNING"):
        assert lc.prepare().startswith("known")
    assert "FileLockHeartBeatLen unset (MQ's default, 10), below 15" in caplog.text


def test_strmqm_exit_3_while_another_hosts_crtmqm_runs_is_waited_for(sim: Harness) -> None:
    """Issue 24 item 6: strmqm exit 3 (being created) is a wait, not a failed start (reference: strmqm)."""
    import threading

    from tests.sim import mqsim

    sim.knob("crtmqm.delay", "3")
    creator = threading.Thread(target=lambda: lifecycle_for(sim).prepare())
    creator.start()
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        other.prepare_root()
        mqsim_ini = f"{sim.efs.path}/qmgrs/QM1/qm.ini"
        deadline = time.monotonic() + 10
        while not os.path.exists(mqsim_ini) and time.monotonic() < deadline:
            time.sleep(0.02)
        # what a second host that looked before the create lock existed did: it registered the data early
        subprocess.run([f"{other.bindir}/addmqinf", "-s", "QueueManager", "-v", "Name=QM1", "-v", "Directory=QM1",
                        "-v", "Prefix=/var/mqm", "-v", f"DataPath={sim.efs.path}/qmgrs/QM1"], check=True)
        outcome = lifecycle_for(other).start()
        assert outcome.result is StartResult.STARTED, outcome.detail
        codes = [c for c in mqsim.calls(other.ctl, "strmqm")]
        assert len(codes) >= 2, "the first strmqm met the create under way (exit 3) and was repeated"
    finally:
        creator.join(30)
        other.cleanup()


def test_registering_an_existing_queue_manager_waits_for_the_create_lock(sim: Harness) -> None:
    """Issue 24 item 6: a second host registers only under the create lock, never while the first host's crtmqm
    runs (IBM's container carries a TODO for this race)."""
    import sys

    sim.knob("crtmqm.delay", "3")
    sim.configure(queue_manager={"run_as": ""})
    # another process, as another host would be (POSIX locks are per process: a thread would share ours)
    creator = subprocess.Popen([sys.executable, "-m", "mqguard.cli.unit", "prepare", "QM1"],
                               env=dict(sim.env(), MQGUARD_CONFIG=str(sim.conf)), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{sim.efs.path}/qmgrs/QM1/qm.ini") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lifecycle_for(other).prepare().startswith("registered")
        created = sim.calls("crtmqm")[0]["t"]
        registered = other.calls("addmqinf")[0]["t"]
        assert registered >= created + 3, "registered while crtmqm was still creating default objects"
        assert creator.wait(30) == 11, creator.stdout.read() if creator.stdout else ""
    finally:
        creator.kill()
        creator.wait()
        other.cleanup()


def test_multi_instance_with_mq_root_on_the_shared_storage_is_refused(sim: Harness) -> None:
    """Issue 24 item 10: IBM's multi-instance recipe keeps /var/mqm local to each host; with MQ's root on the shared
    storage both hosts would share mqs.ini and MQ's error logs. Single instance (IBM's original EFS proof of concept
    put /var/mqm on EFS) stays allowed."""
    from tests.sim import mqsim

    mqsim.install(sim.bindir, f"{sim.efs.path}/var-mqm", host="host1")
    with pytest.raises(PrepareError, match="mqs.ini"):
        lifecycle_for(sim, multi_instance="true").prepare()
    assert sim.calls("crtmqdir") == [] and sim.calls("crtmqm") == [], "nothing was made"
    assert lifecycle_for(sim, multi_instance="false").prepare().startswith("created")


def test_a_symlink_planted_as_the_queue_managers_parent_is_refused(sim: Harness) -> None:
    """Security round 3 HIGH 1: a writer of the EFS planted /MQHA/qmgrs -> /usr/bin; nothing may follow it."""
    victim = sim.tmp / "victim"
    victim.mkdir()
    os.symlink(victim, f"{sim.efs.path}/qmgrs")
    with pytest.raises(PrepareError, match="symbolic link"):
        lifecycle_for(sim).prepare()
    assert list(victim.iterdir()) == [] and sim.calls("crtmqm") == []


class _Created:
    """What the Auto Scaling group remembers: this queue manager was created before."""

    def __init__(self) -> None:
        self.recorded: list = []  # type: ignore[type-arg]

    def earlier(self) -> str:
        return "2026-11-01T10:00:00Z on host-a: data in /mqdata/qmgrs/QM1"

    def record(self, detail: str) -> None:
        self.recorded.append(detail)

    def how_to_recreate(self) -> str:
        return "aws autoscaling delete-tags ..."


def test_a_native_ha_instance_that_lost_its_storage_is_created_empty_loudly(sim: Harness,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Contract section 28: a Native HA instance whose own storage is new rebuilds from the active (normal), but
    it is said loudly and in the history (the word reaches `created`'s detail); a shared-storage queue manager in
    the same situation is refused (the data is not where it was)."""
    sim.configure(queue_manager={"ha": "native_ha", "instance_name": "az-b"},
                  native_ha={"instances": "az-a=127.0.0.1(9001), az-b=127.0.0.1(9002), az-c=127.0.0.1(9003)"})
    cfg = config.load(str(sim.conf))
    control = MqControl(cfg.queue_manager, cfg.storage.path, CommandRunner(), 5.0)
    preparation = Preparation(control, True, 5.0, allowed_owners())
    lc = Lifecycle(control, str(sim.mqsc_dir), ChildService(control, preparation), creation=_Created(),
                   nha=cfg.native_ha)
    with caplog.at_level("WARNING"):
        done = lc.prepare()
    assert done.startswith("created") and "EMPTY replica" in done, done
    assert any("EMPTY replica" in r.getMessage() and "created before" in r.getMessage() for r in caplog.records)
    argv = sim.calls("crtmqm")[0]["argv"]
    assert argv[argv.index("-lr") + 1] == "az-b"
