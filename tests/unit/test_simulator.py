"""The MQ simulator against ../shared/reference/mq-control-commands.md.

If these fail, every other test that uses the simulator proves less.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import Harness, wait_until
from tests.sim import mqsim


def run(h: Harness, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"{h.bindir}/{argv[0]}", *argv[1:]], input=stdin, capture_output=True, text=True, timeout=30)


def prepare_root(h: Harness) -> None:
    """crtmqdir -s -f: the simulated host's MQ root starts empty (ref: dspmqinf); a fresh root warns (10)."""
    assert run(h, "crtmqdir", "-s", "-f").returncode in (0, 10)
    for sub in ("qmgrs", "logs"):
        os.makedirs(f"{h.efs.path}/{sub}", exist_ok=True)


def create(h: Harness, name: str = "QM1", *extra: str) -> None:
    prepare_root(h)
    res = run(h, "crtmqm", "-md", f"{h.efs.path}/qmgrs", "-ld", f"{h.efs.path}/logs", "-p", str(h.port), *extra, name)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dspmq_unknown_queue_manager(sim: Harness) -> None:
    prepare_root(sim)
    res = run(sim, "dspmq", "-m", "QM1")
    assert res.returncode == 72
    assert "AMQ7048E: The queue manager name is either not valid or not known." in res.stderr


def test_crtmqm_output_files_and_duplicate(sim: Harness) -> None:
    prepare_root(sim)
    res = run(sim, "crtmqm", "-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs", "a.b/c")
    assert res.returncode == 0
    assert res.stdout.splitlines()[0] == "IBM MQ queue manager 'a.b/c' created."
    assert "Setup completed." in res.stdout
    assert os.path.isfile(f"{sim.efs.path}/qmgrs/a!b&c/qm.ini")
    assert os.path.isdir(f"{sim.efs.path}/logs/a!b&c")
    ini = open(f"{sim.prefix}/mqs.ini").read()
    assert "QueueManager:\n   Name=a.b/c\n" in ini and "   Directory=a!b&c\n" in ini
    again = run(sim, "crtmqm", "-md", f"{sim.efs.path}/qmgrs", "a.b/c")
    assert again.returncode == 8 and "AMQ8110E: IBM MQ queue manager already exists." in again.stderr


def test_dspmq_line_format_padded_to_58_columns(sim: Harness) -> None:
    create(sim)
    out = run(sim, "dspmq", "-m", "QM1").stdout.rstrip("\n")
    assert out == "QMNAME(QM1)" + " " * 47 + "STATUS(Ended immediately)"
    assert out.index("STATUS(") == 58
    assert run(sim, "dspmq", "-n", "-m", "QM1").stdout.strip().endswith("STATUS(ENDED IMMEDIATELY)")


def test_strmqm_runs_a_real_controller_that_listens_and_holds_a_lock(sim: Harness) -> None:
    create(sim)
    res = run(sim, "strmqm", "QM1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "IBM MQ queue manager 'QM1' starting."
    assert "IBM MQ queue manager 'QM1' started using V9.4.0.0." in res.stdout
    pids = sim.controllers()
    assert len(pids) == 1
    assert open(f"/proc/{pids[0]}/comm").read().strip() == "amqzxma0"
    assert b"-m\0QM1\0-u\0mqm" in open(f"/proc/{pids[0]}/cmdline", "rb").read()
    assert mqsim.lock_holder(f"{sim.efs.path}/qmgrs/QM1/active.lock") == pids[0]
    import socket
    socket.create_connection(("127.0.0.1", sim.port), timeout=2).close()
    assert "STATUS(RUNNING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    again = run(sim, "strmqm", "QM1")
    assert again.returncode == 5 and "IBM MQ queue manager running." in again.stdout


def test_kill_9_of_controller_gives_ended_unexpectedly(sim: Harness) -> None:
    create(sim)
    run(sim, "strmqm", "QM1")
    os.kill(sim.controllers()[0], signal.SIGKILL)
    wait_until(lambda: "ENDED UNEXPECTEDLY" in run(sim, "dspmq", "-n", "-m", "QM1").stdout, 5, "ended unexpectedly")
    assert run(sim, "strmqm", "QM1").returncode == 24  # its children linger (see the strict tests below)


def test_endmqm_modes_and_not_running(sim: Harness) -> None:
    create(sim)
    run(sim, "strmqm", "QM1")
    res = run(sim, "endmqm", "-w", "QM1")
    assert res.returncode == 0
    assert res.stdout.splitlines()[-1] == "IBM MQ queue manager 'QM1' ended."
    assert "Ended normally" in run(sim, "dspmq", "-m", "QM1").stdout
    res = run(sim, "endmqm", "-w", "QM1")
    assert res.returncode == 40 and "AMQ8146E: IBM MQ queue manager not available." in res.stderr
    run(sim, "strmqm", "QM1")
    res = run(sim, "endmqm", "-i", "QM1")
    assert res.returncode == 0 and "IBM MQ queue manager 'QM1' ending." in res.stdout
    assert "Ended immediately" in run(sim, "dspmq", "-m", "QM1").stdout
    run(sim, "strmqm", "QM1")
    assert run(sim, "endmqm", "-p", "QM1").returncode == 0
    assert "Ended pre-emptively" in run(sim, "dspmq", "-m", "QM1").stdout
    assert run(sim, "endmqm", "QM2").returncode == 16


def test_endmqm_c_returns_at_once_with_quiesce_message(sim: Harness) -> None:
    create(sim)
    run(sim, "strmqm", "QM1")
    res = run(sim, "endmqm", "-c", "QM1")
    assert res.returncode == 0 and res.stdout.startswith("Quiesce request accepted.")
    wait_until(lambda: "Ended normally" in run(sim, "dspmq", "-m", "QM1").stdout, 5, "ended normally")


def test_dspmqinf_and_addmqinf_on_a_second_host(sim: Harness, tmp_path: object) -> None:
    create(sim)
    res = run(sim, "dspmqinf", "QM1")
    assert res.returncode == 0 and res.stdout.startswith("QueueManager:\n   Name=QM1\n")
    assert f"   DataPath={sim.efs.path}/qmgrs/QM1" in res.stdout
    cmd = run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split()
    assert cmd[:3] == ["addmqinf", "-s", "QueueManager"]
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        prepare_root(other)
        assert run(other, "dspmqinf", "QM1").returncode == 44
        res = run(other, *cmd)
        assert res.returncode == 0 and res.stdout.strip() == "IBM MQ configuration information added."
        assert run(other, *cmd).returncode == 45
        assert run(other, "addmqinf", "-s", "QueueManager", "-v", "Name=X").returncode == 46
        assert run(other, "dspmqinf", "QM1").returncode == 0
    finally:
        other.cleanup()


def test_second_host_sees_running_elsewhere_and_strmqm_exit_codes(sim: Harness) -> None:
    create(sim)
    run(sim, "strmqm", "QM1")
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        cmd = run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split()
        prepare_root(other)
        run(other, *cmd)
        assert "STATUS(RUNNING ELSEWHERE)" in run(other, "dspmq", "-n", "-m", "QM1").stdout
        res = run(other, "strmqm", "QM1")
        assert res.returncode == 43  # started without -x: standbys not permitted
        run(sim, "endmqm", "-i", "QM1")
        assert run(sim, "strmqm", "-x", "QM1").returncode == 0
        assert run(other, "strmqm", "QM1").returncode == 31  # permitted, but this one lacks -x
        res = run(other, "strmqm", "-x", "QM1")
        assert res.returncode == 30 and "A standby instance of queue manager 'QM1' has been started." in res.stdout
        out = run(other, "dspmq", "-x", "-m", "QM1").stdout
        assert "STATUS(Running as standby)" in out
        assert "    INSTANCE(host1) MODE(Active)" in out and "    INSTANCE(host2) MODE(Standby)" in out
        # the active one dies: the standby takes the lock and becomes active on host2
        os.kill(sim.controllers()[0], signal.SIGKILL)
        wait_until(lambda: "STATUS(RUNNING)" in run(other, "dspmq", "-n", "-m", "QM1").stdout, 10, "takeover")
        assert "STATUS(RUNNING ELSEWHERE)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    finally:
        other.cleanup()


def test_runmqsc_report_and_exit_codes(sim: Harness) -> None:
    create(sim)
    res = run(sim, "runmqsc", "QM1", stdin="DEFINE QLOCAL(APP.Q) REPLACE\n")
    assert res.returncode == 20 and "AMQ8146E" in res.stderr
    assert run(sim, "runmqsc", "QM9", stdin="").returncode == 20
    run(sim, "strmqm", "QM1")
    res = run(sim, "runmqsc", "QM1", stdin="* comment\nDEFINE QLOCAL(APP.Q) +\n  REPLACE\n")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("5724-H72 (C) Copyright IBM Corp.")
    assert "Starting MQSC for queue manager QM1." in lines
    assert "     1 : DEFINE QLOCAL(APP.Q) REPLACE" in lines
    assert "One MQSC command read." in lines and "No commands have a syntax error." in lines
    res = run(sim, "runmqsc", "QM1", stdin="DEFINE QLOCAL(B)\nFROB QLOCAL(C)\n")
    assert res.returncode == 10 and "2 MQSC commands read." in res.stdout
    assert "One command has a syntax error." in res.stdout


def test_fault_knobs(sim: Harness) -> None:
    create(sim)
    sim.knob("strmqm.exit", "71")
    res = run(sim, "strmqm", "QM1")
    assert res.returncode == 71 and "AMQ6109E" in res.stderr
    sim.unknob("strmqm.exit")
    sim.knob("dspmq.garble")
    assert "STATUS(Runn" in run(sim, "dspmq", "-m", "QM1").stdout
    sim.unknob("dspmq.garble")
    sim.knob("dspmq.hang")
    start = time.monotonic()
    try:
        subprocess.run([f"{sim.bindir}/dspmq", "-m", "QM1"], timeout=0.5, capture_output=True)
        raise AssertionError("dspmq should hang")
    except subprocess.TimeoutExpired:
        assert time.monotonic() - start < 10  # killed at the timeout, not after the hour it hangs
    sim.unknob("dspmq.hang")
    sim.knob("strmqm.delay", "1.0")
    proc = subprocess.Popen([f"{sim.bindir}/strmqm", "QM1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: "STATUS(STARTING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout, 5, "starting")
    assert proc.wait(timeout=10) == 0
    assert "STATUS(RUNNING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    assert [c["cmd"] for c in sim.calls("strmqm")] == ["strmqm", "strmqm"]


# ------------------------------------------------------- strict behaviours (ref: mq-control-commands.md)

def fdcs(h: Harness) -> list:
    errors = f"{h.prefix}/errors"
    return sorted(n for n in os.listdir(errors) if n.endswith(".FDC")) if os.path.isdir(errors) else []


def test_an_empty_mq_root_fails_every_command_with_71_and_an_fdc_until_crtmqdir(sim: Harness) -> None:
    for argv in (("dspmq", "-m", "QM1"), ("dspmqinf", "QM1"), ("strmqm", "QM1"),
                 ("crtmqm", "-md", f"{sim.efs.path}", "QM1")):
        res = run(sim, *argv)
        assert res.returncode == 71, (argv, res.stderr)
    assert len(fdcs(sim)) == 4 and "Probe Id" in open(f"{sim.prefix}/errors/{fdcs(sim)[0]}").read()
    first = run(sim, "crtmqdir", "-s", "-f")
    assert first.returncode == 10 and "warning" in first.stdout, "a fresh root: done with warnings (ref: dspmqinf)"
    assert run(sim, "crtmqdir", "-s", "-f").returncode == 0, "an existing root: verified, no warning"
    assert os.path.isfile(f"{sim.prefix}/mqs.ini")
    assert run(sim, "dspmqinf", "QM1").returncode == 44


def test_dspmqver_names_the_mq_root(sim: Harness) -> None:
    res = run(sim, "dspmqver")
    assert res.returncode == 0 and f"DataPath:    {sim.prefix}" in res.stdout.splitlines()


def test_crtmqm_makes_setgid_directories_and_needs_ibm_limits_and_existing_parents(sim: Harness) -> None:
    prepare_root(sim)
    shared = sim.efs.path
    res = run(sim, "crtmqm", "-md", f"{shared}/nodata", "-ld", f"{shared}/logs", "QM1")
    assert res.returncode == 71 and "does not exist" in res.stderr  # crtmqm makes no parents
    res = run(sim, "crtmqm", "-md", f"{shared}/qmgrs", "-ld", f"{shared}/nologs", "QM1")
    assert res.returncode == 100
    low = subprocess.run(["prlimit", "--nofile=1024:1024", f"{sim.bindir}/crtmqm", "-md", f"{shared}/qmgrs",
                          "-ld", f"{shared}/logs", "QM1"], capture_output=True, text=True, timeout=30)
    assert low.returncode == 71 and "below 10240" in low.stderr
    create(sim)
    import stat
    for path in (f"{shared}/qmgrs/QM1", f"{shared}/logs/QM1"):
        assert os.stat(path).st_mode & stat.S_ISGID, path
    assert "FileLockHeartBeatLen" not in open(f"{shared}/qmgrs/QM1/qm.ini").read()


def test_crtmqm_adds_a_suffix_when_the_directory_is_left_over(sim: Harness) -> None:
    prepare_root(sim)
    os.makedirs(f"{sim.efs.path}/qmgrs/QM1")  # a leftover
    create(sim)
    out = run(sim, "dspmqinf", "-o", "stanza", "QM1").stdout
    assert "   Directory=QM1.000" in out and f"   DataPath={sim.efs.path}/qmgrs/QM1.000" in out
    assert os.path.isfile(f"{sim.efs.path}/qmgrs/QM1.000/qm.ini")


def test_a_listener_runs_only_with_crtmqm_p_or_mqsc_and_start_listener_twice_fails(sim: Harness) -> None:
    import socket
    prepare_root(sim)
    assert run(sim, "crtmqm", "-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs", "QM1").returncode == 0
    assert run(sim, "strmqm", "QM1").returncode == 0
    try:
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
        raise AssertionError("nothing should listen without crtmqm -p or MQSC")
    except ConnectionRefusedError:
        pass
    mqsc = f"DEFINE LISTENER(L1) TRPTYPE(TCP) PORT({sim.port}) CONTROL(QMGR) REPLACE\nSTART LISTENER(L1)\n"
    assert run(sim, "runmqsc", "QM1", stdin=mqsc).returncode == 0
    socket.create_connection(("127.0.0.1", sim.port), timeout=2).close()
    again = run(sim, "runmqsc", "QM1", stdin="START LISTENER(L1)\n")
    assert again.returncode == 10 and "AMQ8730E" in again.stdout
    # CONTROL(QMGR): it comes back with the next start, without MQSC
    run(sim, "endmqm", "-i", "QM1")
    assert run(sim, "strmqm", "QM1").returncode == 0
    socket.create_connection(("127.0.0.1", sim.port), timeout=2).close()


def test_every_bare_tcp_connect_logs_amq9209e(sim: Harness) -> None:
    import socket
    create(sim)
    run(sim, "strmqm", "QM1")
    for _ in range(3):
        socket.create_connection(("127.0.0.1", sim.port), timeout=2).close()
    log = f"{sim.efs.path}/qmgrs/QM1/errors"
    wait_until(lambda: mqsim.error_log(log).count("AMQ9209E") == 3, 5, "three AMQ9209E entries")


def test_a_log_path_on_another_hosts_disk_is_exit_23(sim: Harness) -> None:
    prepare_root(sim)
    # no -ld: the log lands on host1's own disk (ref: crtmqm)
    assert run(sim, "crtmqm", "-md", f"{sim.efs.path}/qmgrs", "QM1").returncode == 0
    cmd = run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split()
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        prepare_root(other)
        assert run(other, *cmd).returncode == 0
        res = run(other, "strmqm", "QM1")
        assert res.returncode == 23 and "AMQ7017S" in res.stderr
        assert "AMQ7017S" in mqsim.error_log(f"{sim.efs.path}/qmgrs/QM1/errors")
    finally:
        other.cleanup()


def test_mq_processes_ignore_sigterm_and_children_outlive_a_killed_controller(sim: Harness) -> None:
    create(sim)
    sim.knob("children.linger", "1.5")
    run(sim, "strmqm", "QM1")
    pid = sim.controllers()[0]
    s = mqsim.Sim(sim.bindir)
    family = mqsim.qm_processes(s, "QM1")
    assert len(family) == 4 and pid in family
    for p in family:
        os.kill(p, signal.SIGTERM)
    time.sleep(0.3)
    assert all(mqsim.alive(p) for p in family), "SIGTERM must be ignored"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: "ENDED UNEXPECTEDLY" in run(sim, "dspmq", "-n", "-m", "QM1").stdout, 5, "crash seen")
    res = run(sim, "strmqm", "QM1")
    assert res.returncode == 24 and "AMQ8041S" in res.stderr
    wait_until(lambda: not mqsim.qm_processes(s, "QM1"), 10, "the leftovers to go")
    assert run(sim, "strmqm", "QM1").returncode == 0


def test_connected_clients_keep_endmqm_w_waiting_until_tp_or_i(sim: Harness) -> None:
    create(sim)
    run(sim, "strmqm", "QM1")
    sim.knob("clients.connected")
    try:
        subprocess.run([f"{sim.bindir}/endmqm", "-w", "QM1"], capture_output=True, timeout=1.5)
        raise AssertionError("endmqm -w must wait while clients are connected")
    except subprocess.TimeoutExpired:
        pass
    assert "QUIESCING" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    res = run(sim, "endmqm", "-w", "-tp", "1", "QM1")
    assert res.returncode == 0 and "Ended immediately" in run(sim, "dspmq", "-m", "QM1").stdout


def test_endmqm_without_s_ends_the_standby_too_and_with_s_hands_over(sim: Harness) -> None:
    create(sim)
    assert run(sim, "strmqm", "-x", "QM1").returncode == 0
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    try:
        prepare_root(other)
        run(other, *run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split())
        assert run(other, "strmqm", "-x", "QM1").returncode == 30
        assert run(sim, "endmqm", "-s", "-i", "QM1").returncode == 0
        wait_until(lambda: "STATUS(RUNNING)" in run(other, "dspmq", "-n", "-m", "QM1").stdout, 10, "handover")
        assert run(sim, "strmqm", "-x", "QM1").returncode == 30  # a standby on host1 now
        assert run(other, "endmqm", "-i", "QM1").returncode == 0  # no -s: every instance ends
        time.sleep(0.5)
        for h in (sim, other):
            assert "RUNNING" not in run(h, "dspmq", "-n", "-m", "QM1").stdout
        assert not sim.controllers() and not other.controllers()
    finally:
        other.cleanup()


def test_a_second_strmqm_aborts_a_start_in_progress(sim: Harness) -> None:
    create(sim)
    sim.knob("strmqm.delay", "30")
    first = subprocess.Popen([f"{sim.bindir}/strmqm", "QM1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: "STATUS(STARTING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout, 5, "starting")
        assert run(sim, "strmqm", "QM1").returncode == 71
        assert first.wait(timeout=10) != 0
        assert "ENDED UNEXPECTEDLY" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    finally:
        first.kill()
        first.wait()


def _second_host(sim: Harness) -> Harness:
    other = Harness(sim.tmp, sim.efs, host="host2")  # type: ignore[arg-type]
    prepare_root(other)
    return other


def test_crtmqm_ii_merges_ini_stanzas_into_qm_ini_and_ic_records_mqsc(sim: Harness) -> None:
    """ref: crtmqm -ii FILE|DIR merges the stanzas (e.g. TuningParameters: FileLockHeartBeatLen=15); -ic
    names MQSC applied at every start; an unreadable INI input fails the create."""
    tuning = sim.tmp / "tuning"
    tuning.mkdir()
    (tuning / "10-efs.ini").write_text("TuningParameters:\n   FileLockHeartBeatLen=15\n")
    (tuning / "20-log.ini").write_text("Log:\n   LogFilePages=8192\n")
    (tuning / "ignored.txt").write_text("not INI")
    mqsc = sim.tmp / "auto.mqsc"
    mqsc.write_text("DEFINE QLOCAL(A)\n")
    create(sim, "QM1", "-ii", str(tuning), "-ic", str(mqsc))
    ini = mqsim.qm_ini(f"{sim.efs.path}/qmgrs/QM1")
    assert ini["TuningParameters"] == {"FileLockHeartBeatLen": "15"}
    assert ini["Log"]["LogFilePages"] == "8192" and ini["Log"]["LogPath"].endswith("/logs/QM1/")
    assert ini["AutoConfig"] == {"MQSCConfig": str(mqsc)}
    (tuning / "30-bad.ini").write_text("this is not a stanza\n")
    res = run(sim, "crtmqm", "-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs", "-ii", str(tuning), "QM2")
    assert res.returncode == 39 and "30-bad.ini line 1" in res.stderr
    assert sim.calls("crtmqm")[-1]["argv"][-1] == "QM2" and not os.path.exists(f"{sim.efs.path}/qmgrs/QM2")


def test_strmqm_exits_3_while_another_hosts_crtmqm_is_under_way(sim: Harness) -> None:
    """ref: strmqm exit 3, being created: a host that registered the data early must wait, not fail."""
    prepare_root(sim)
    sim.knob("crtmqm.delay", "3")
    creating = subprocess.Popen([f"{sim.bindir}/crtmqm", "-md", f"{sim.efs.path}/qmgrs", "-ld", f"{sim.efs.path}/logs",
                                 "QM1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    other = _second_host(sim)
    try:
        wait_until(lambda: os.path.exists(f"{sim.efs.path}/qmgrs/QM1/qm.ini"), 10, "qm.ini on the shared storage")
        res = run(other, "addmqinf", "-s", "QueueManager", "-v", "Name=QM1", "-v", "Directory=QM1", "-v",
                  "Prefix=/var/mqm", "-v", f"DataPath={sim.efs.path}/qmgrs/QM1")
        assert res.returncode == 0
        res = run(other, "strmqm", "QM1")
        assert res.returncode == 3 and "being created" in res.stderr
        assert creating.wait(timeout=20) == 0
        assert run(other, "strmqm", "QM1").returncode == 0, "once crtmqm is done the start works"
    finally:
        creating.kill()
        creating.wait()
        other.cleanup()


def test_endmqm_s_with_no_standby_is_refused_with_77(sim: Harness) -> None:
    """ref: endmqm — IBM's page says -s releases the lock, the reference calls 77 unverified: the simulator
    takes the stricter and refuses, ending nothing."""
    create(sim)
    run(sim, "strmqm", "-x", "QM1")
    res = run(sim, "endmqm", "-s", "-w", "QM1")
    assert res.returncode == 77 and "no standby" in res.stderr
    assert "STATUS(RUNNING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout


def test_a_switchover_held_by_a_connected_client_waits_until_s_i(sim: Harness) -> None:
    """ref: endmqm — endmqm -s -w waits for long-lived clients like any -w; -s -i then hands over."""
    create(sim)
    run(sim, "strmqm", "-x", "QM1")
    other = _second_host(sim)
    try:
        run(other, *run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split())
        assert run(other, "strmqm", "-x", "QM1").returncode == 30
        sim.knob("clients.connected")
        try:
            subprocess.run([f"{sim.bindir}/endmqm", "-s", "-w", "QM1"], capture_output=True, timeout=1.5)
            raise AssertionError("endmqm -s -w must wait while a client is connected")
        except subprocess.TimeoutExpired:
            pass
        assert "STATUS(RUNNING AS STANDBY)" in run(other, "dspmq", "-n", "-m", "QM1").stdout, "no handover yet"
        assert run(sim, "endmqm", "-s", "-i", "QM1").returncode == 0
        wait_until(lambda: "STATUS(RUNNING)" in run(other, "dspmq", "-n", "-m", "QM1").stdout, 10, "handover")
    finally:
        other.cleanup()


def test_a_bare_argv_installation_runs_real_executables_named_like_mq_9_2(tmp_path: object) -> None:
    """ref: strmqm — 9.2 runs a bare `amqzxma0 -m NAME -x`: no path in argv, no -u; the executable itself
    (/proc/PID/exe) is the installation's."""
    from pathlib import Path

    base = Path(str(tmp_path))
    bindir, shared = str(base / "bin"), base / "shared"
    (shared / "qmgrs").mkdir(parents=True)
    (shared / "logs").mkdir()
    mqsim.install(bindir, str(base / "var"), bare_argv=True)
    try:
        assert subprocess.run([f"{bindir}/crtmqdir", "-s", "-f"], capture_output=True).returncode in (0, 10)
        assert subprocess.run([f"{bindir}/crtmqm", "-md", str(shared / "qmgrs"), "-ld", str(shared / "logs"), "QM1"],
                              capture_output=True).returncode == 0
        res = subprocess.run([f"{bindir}/strmqm", "-x", "QM1"], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        pids = mqsim.controller_pids("QM1", bindir)
        assert len(pids) == 1
        argv = open(f"/proc/{pids[0]}/cmdline", "rb").read().split(b"\0")[:-1]
        assert argv == [b"amqzxma0", b"-m", b"QM1", b"-x"]
        assert os.readlink(f"/proc/{pids[0]}/exe") == os.path.realpath(f"{bindir}/amqzxma0")
        family = mqsim.qm_processes(mqsim.Sim(bindir), "QM1")
        assert len(family) == 4, "the children are bare too, found by their executables"
        assert subprocess.run([f"{bindir}/endmqm", "-i", "QM1"], capture_output=True, timeout=30).returncode == 0
        assert not mqsim.controller_pids("QM1", bindir)
    finally:
        from tests.conftest import kill_controllers

        kill_controllers(bindir)


def test_process_lookups_never_reach_another_installations_queue_manager(sim: Harness) -> None:
    """A queue manager of the same name run by another installation (another test, a real MQ) is never
    counted or killed as this simulator's."""
    create(sim)
    run(sim, "strmqm", "QM1")
    other = Harness(sim.tmp, sim.efs, host="elsewhere")  # type: ignore[arg-type]
    try:
        foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "amqzxma0", "-m", "QM1"])
        try:
            assert foreign.pid not in mqsim.controller_pids("QM1", sim.bindir)
            assert foreign.pid not in mqsim.controller_pids("QM1", other.bindir)
            assert mqsim.controller_pids("QM1", other.bindir) == []
            from tests.conftest import kill_controllers

            kill_controllers(other.bindir)
            assert foreign.poll() is None and len(sim.controllers()) == 1
        finally:
            foreign.kill()
            foreign.wait()
    finally:
        other.cleanup()


def test_a_queue_manager_started_by_a_newer_release_cannot_be_started_by_an_older_one(sim: Harness) -> None:
    """IBM, "Queue manager migration": once a new version or release has started (migrated) a queue manager, an
    earlier code level cannot start it (a warm-pool instance from an old AMI after an upgrade)."""
    create(sim)
    assert run(sim, "strmqm", "QM1").returncode == 0
    assert run(sim, "endmqm", "-w", "QM1").returncode == 0
    old = Harness(sim.tmp, sim.efs, host="old")  # type: ignore[arg-type]
    try:
        mqsim.install(old.bindir, old.prefix, host="old", version="9.3.0.15")
        prepare_root(old)
        run(old, *run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split())
        assert "Version:     9.3.0.15" in run(old, "dspmqver").stdout
        res = run(old, "strmqm", "QM1")
        assert res.returncode == 71 and "earlier release" in res.stderr
        fixpack = Harness(sim.tmp, sim.efs, host="fixpack")  # type: ignore[arg-type]
        try:
            mqsim.install(fixpack.bindir, fixpack.prefix, host="fixpack", version="9.4.0.0")
            prepare_root(fixpack)
            run(fixpack, *run(sim, "dspmqinf", "-o", "command", "QM1").stdout.split())
            assert run(fixpack, "strmqm", "QM1").returncode == 0, "the same release starts it"
        finally:
            fixpack.cleanup()
    finally:
        old.cleanup()
