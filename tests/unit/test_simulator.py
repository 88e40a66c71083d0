"""The MQ simulator against ../shared/reference/mq-control-commands.md.

If these fail, every other test that uses the simulator proves less.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.conftest import Harness, wait_until
from tests.sim import mqsim


def run(h: Harness, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"{h.bindir}/{argv[0]}", *argv[1:]], input=stdin, capture_output=True, text=True, timeout=30)


def create(h: Harness, name: str = "QM1") -> None:
    assert run(h, "crtmqm", "-md", f"{h.efs.path}/qmgrs", "-ld", f"{h.efs.path}/logs", name).returncode == 0


def test_dspmq_unknown_queue_manager(sim: Harness) -> None:
    res = run(sim, "dspmq", "-m", "QM1")
    assert res.returncode == 72
    assert "AMQ7048E: The queue manager name is either not valid or not known." in res.stderr


def test_crtmqm_output_files_and_duplicate(sim: Harness) -> None:
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
    assert run(sim, "strmqm", "QM1").returncode == 0


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
        run(other, *cmd)
        assert "STATUS(RUNNING ELSEWHERE)" in run(other, "dspmq", "-n", "-m", "QM1").stdout
        res = run(other, "strmqm", "QM1")
        assert res.returncode == 31
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
        assert time.monotonic() - start < 3
    sim.unknob("dspmq.hang")
    sim.knob("strmqm.delay", "1.0")
    proc = subprocess.Popen([f"{sim.bindir}/strmqm", "QM1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: "STATUS(STARTING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout, 5, "starting")
    assert proc.wait(timeout=10) == 0
    assert "STATUS(RUNNING)" in run(sim, "dspmq", "-n", "-m", "QM1").stdout
    assert [c["cmd"] for c in sim.calls("strmqm")] == ["strmqm", "strmqm"]
