"""``mqguard run`` as a real subprocess against the simulator, a FUSE "EFS",
a real IMDSv2 server and moto's Auto Scaling server.

Each test prints the figures it measured (pytest -s shows them; the Makefile
keeps them in the log).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import Harness, wait_until
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.imds import ImdsServer
from tests.sim import mqsim


def figure(name: str, value: float, unit: str = "s") -> None:
    print(f"\nFIGURE {name}: {value:.3f} {unit}")


def use_autoscaling(h: Harness, proxy: FaultProxy, imds: ImdsServer) -> None:
    h.configure(
        health={"report": "autoscaling"},
        aws={"region": "", "endpoint_url": proxy.url, "imds_url": imds.url},
    )


def set_health_calls(proxy: FaultProxy) -> int:
    return sum(1 for action, _ in proxy.seen if action == "SetInstanceHealth")


def test_fresh_efs_creates_starts_and_applies_mqsc(harness: Harness) -> None:
    # MQSC written for a queue manager without crtmqm -p: starting the (already running) listener again
    (harness.mqsc_dir / "10-app.mqsc").write_text("DEFINE QLOCAL(APP.Q) REPLACE\nSTART LISTENER(SYSTEM.LISTENER.TCP.1)\n")
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    crt = harness.calls("crtmqm")
    assert len(crt) == 1
    argv = crt[0]["argv"]
    assert argv[:6] == ["-md", f"{harness.efs.path}/qmgrs", "-ld", f"{harness.efs.path}/logs", "-p", str(harness.port)]
    assert argv[6] == "-ii" and argv[8:] == ["QM1"], "FileLockHeartBeatLen through crtmqm -ii"
    assert "FileLockHeartBeatLen=15" in Path(harness.efs.src, "qmgrs", "QM1", "qm.ini").read_text()
    assert Path(harness.efs.src, "qmgrs", "QM1", "qm.ini").is_file(), "data must land on the EFS"
    assert Path(harness.efs.src, "logs", "QM1").is_dir()
    mqsc = Path(harness.efs.src, "qmgrs", "QM1", "mqsc.log").read_text().splitlines()
    assert mqsc == ["DEFINE QLOCAL(APP.Q) REPLACE", "START LISTENER(SYSTEM.LISTENER.TCP.1)"]
    harness.wait_log(r"applied MQSC .*10-app.mqsc")
    assert "AMQ8730E" in harness.log_text() and "some commands failed" not in harness.log_text()
    assert len(harness.controllers()) == 1
    assert harness.stop() == 0
    assert len(harness.controllers()) == 1, "stop_on_exit = never leaves MQ running"


def test_data_on_efs_but_not_registered_uses_addmqinf_never_crtmqm(harness: Harness) -> None:
    # host0 created the queue manager earlier (and died); this host has never seen it.
    creator = Harness(harness.tmp, harness.efs, host="host0")
    try:
        creator.create_by_hand()
    finally:
        creator.cleanup()
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    assert harness.calls("crtmqm") == []
    order = [c["cmd"] for c in harness.calls() if c["cmd"] in ("dspmqinf", "addmqinf", "strmqm")
             and c["argv"][:1] != ["-o"]]  # the read-back of Directory/DataPath aside
    # dspmqinf, then again under the create lock (a first-time registration never races another host's crtmqm)
    assert order[:4] == ["dspmqinf", "dspmqinf", "addmqinf", "strmqm"]
    assert "registered existing queue manager QM1" in harness.log_text()
    harness.stop()


def test_kill_9_is_restarted_without_waiting_for_the_poll(harness: Harness) -> None:
    harness.configure(health={"poll_interval": "30s", "grace_period": "60s"})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    time.sleep(0.5)  # let the loop settle into its 30 s wait, watching the pidfd
    old = harness.controllers()
    assert len(old) == 1
    strmqm_before = len(harness.calls("strmqm"))
    killed_at = time.time()
    os.kill(old[0], signal.SIGKILL)
    wait_until(lambda: len(harness.calls("strmqm")) > strmqm_before, 10, "a restart")
    restart_called = harness.calls("strmqm")[-1]["t"]
    new = wait_until(lambda: [p for p in harness.controllers() if p not in old], 15, "a new amqzxma0")
    up_at = time.time()
    figure("crash to strmqm (poll 30s)", float(restart_called) - killed_at)  # type: ignore[arg-type]
    figure("crash to new amqzxma0 running", up_at - killed_at)
    assert float(restart_called) - killed_at < 5, "restart must not wait for the 30 s poll"  # type: ignore[arg-type]
    assert new
    harness.wait_log(r"QM1: running", after=harness.log_text().index("exited; checking now"), timeout=15)
    assert "instance is unhealthy" not in harness.log_text(), "a crash that is healed locally is not reported"
    harness.stop()


def test_persistent_strmqm_failure_is_reported_once_after_grace(
    harness: Harness, aws: FaultProxy, imds: ImdsServer, moto: MotoAsg
) -> None:
    grace, poll = 5.0, 1.0
    harness.configure(health={"grace_period": "5s", "poll_interval": "1s", "restart_attempts": "3"})
    use_autoscaling(harness, aws, imds)
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.wait_log(rf"Auto Scaling reachable: instance {moto.instance_id} in group {moto.asg_name}", timeout=20)
    assert moto.health() == "Healthy"
    harness.knob("strmqm.exit", "71")
    failed_at = time.monotonic()
    os.kill(harness.controllers()[0], signal.SIGKILL)
    wait_until(lambda: moto.health() == "Unhealthy", grace + poll + 10, "Unhealthy in moto", interval=0.05)
    latency = time.monotonic() - failed_at
    figure("failure to Unhealthy in moto (grace 5s, poll 1s)", latency)
    assert grace <= latency <= grace + poll + 2
    time.sleep(3)  # nothing more may be sent
    assert set_health_calls(aws) == 1
    assert len(harness.calls("strmqm")) == 1 + 3, "the start-up plus restart_attempts"
    harness.wait_log(r"reported instance i-\w+ Unhealthy")
    assert harness.stop() == 0


def test_frozen_efs_keeps_cycling_and_reports_after_grace(
    harness: Harness, aws: FaultProxy, imds: ImdsServer, moto: MotoAsg
) -> None:
    harness.configure(health={"grace_period": "4s", "poll_interval": "500ms"}, storage={"probe_timeout": "300ms"})
    use_autoscaling(harness, aws, imds)
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    assert harness.proc is not None
    pid = harness.proc.pid
    threads_before = len(os.listdir(f"/proc/{pid}/task"))
    cycles_before = len(re.findall(r"cycle \d+ done", harness.log_text()))
    harness.efs.freeze()
    frozen_at = time.monotonic()
    try:
        wait_until(lambda: moto.health() == "Unhealthy", 15, "Unhealthy after freezing EFS", interval=0.05)
        latency = time.monotonic() - frozen_at
        figure("EFS frozen to Unhealthy (grace 4s, poll 0.5s, probe 0.3s)", latency)
        assert latency >= 4
        time.sleep(2)
        cycles = len(re.findall(r"cycle \d+ done", harness.log_text())) - cycles_before
        threads_after = len(os.listdir(f"/proc/{pid}/task"))
        figure("cycles completed while frozen", cycles, "cycles")
        assert cycles >= 8, "the loop must keep cycling while EFS hangs"
        # at most one stuck thread each: the storage probe, the pause read, MQ's diagnostics (read after the report),
        # and the reporter waiting (at most REPORT_FLUSH, 5 s) for its own 'reported' event to reach the EFS
        assert threads_after <= threads_before + 4, "stuck probes must not pile up"
        assert "still stuck" in harness.log_text()
        assert set_health_calls(aws) == 1
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        assert len(kids) <= 1, f"commands piling up: {kids}"
    finally:
        harness.efs.thaw()
    harness.wait_log(r"QM1: running", after=len(harness.log_text()), timeout=15)
    assert harness.stop() == 0


def test_report_log_makes_no_aws_call_at_all(harness: Harness, aws: FaultProxy, imds: ImdsServer) -> None:
    harness.configure(
        health={"report": "log", "grace_period": "2s", "restart_attempts": "1"},
        aws={"endpoint_url": aws.url, "imds_url": imds.url},
    )
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.knob("strmqm.exit", "71")
    os.kill(harness.controllers()[0], signal.SIGKILL)
    harness.wait_log(r"report = log, so Auto Scaling is NOT told", timeout=15)
    harness.stop()
    assert aws.seen == [] and imds.requests == []


def test_sigterm_with_never_leaves_mq_running_and_next_run_adopts_it(harness: Harness) -> None:
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    pid = harness.controllers()
    assert harness.stop() == 0
    assert "leaving queue manager QM1 as it is: stop_on_exit = never" in harness.log_text()
    assert harness.controllers() == pid
    strmqm = len(harness.calls("strmqm"))
    harness.log = harness.tmp / "second.log"
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    # Adopted via dspmq, or (when dspmq is slow) strmqm answers exit 5 "already
    # running": either way the same processes run on and nothing was ended. The
    # job logs this just after the loop may already have logged "running".
    harness.wait_log(r"adopted the running queue manager|QM1: already running", timeout=15)
    new_starts = harness.calls("strmqm")[strmqm:]
    assert all(c["argv"] == ["QM1"] for c in new_starts) and len(new_starts) <= 1
    assert harness.calls("endmqm") == []
    assert harness.controllers() == pid
    harness.stop()


def test_sigterm_with_always_ends_mq_and_escalates(harness: Harness) -> None:
    harness.configure(queue_manager={"stop_on_exit": "always", "stop_timeout": "1s"})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.knob("clients.connected")  # a controlled end that never finishes
    start = time.monotonic()
    assert harness.stop(timeout=60) == 0
    figure("stop with -w hanging (stop_timeout 1s)", time.monotonic() - start)
    assert [c["argv"][:-1] for c in harness.calls("endmqm")] == [["-r", "-w"], ["-r", "-i"]]
    assert harness.controllers() == []
    assert "ENDED IMMEDIATELY" in harness.dspmq()


def test_sigterm_with_always_ends_cleanly_with_w(harness: Harness) -> None:
    harness.configure(queue_manager={"stop_on_exit": "always"})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    assert harness.stop() == 0
    assert [c["argv"] for c in harness.calls("endmqm")] == [["-r", "-w", "QM1"]]
    assert "ENDED NORMALLY" in harness.dspmq()


def test_sigterm_during_a_slow_start_cancels_strmqm_before_endmqm(harness: Harness) -> None:
    """A strmqm still running at shutdown used to be left running while endmqm was sent."""
    harness.configure(queue_manager={"stop_on_exit": "always"})
    harness.knob("strmqm.delay", "60")  # the queue manager stays STARTING; strmqm waits for it
    harness.start()
    harness.wait_log(r"queue manager QM1: bringing it up", timeout=30)
    wait_until(lambda: harness.calls("strmqm"), 20, "strmqm to start")
    time.sleep(0.5)
    start = time.monotonic()
    assert harness.stop(timeout=60) == 0
    assert time.monotonic() - start < 20
    log = harness.log_text()
    assert "cancelling the running job before ending the queue manager (1 command(s) killed)" in log
    assert log.index("cancelling the running job") < log.index("ending queue manager QM1")
    assert harness.calls("endmqm"), "the queue manager is still ended cleanly"
    assert not [p for p in strmqm_pids(harness.bindir)], "no strmqm left behind"


def strmqm_pids(bindir: str) -> list:  # type: ignore[type-arg]
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    args = fh.read().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"/strmqm") for a in args[:2]) and any(bindir.encode() in a for a in args):
                found.append(int(entry))
    return found


def test_waits_for_the_mount_then_proceeds(harness: Harness) -> None:
    harness.efs.unmount()
    harness.start()
    harness.wait_log(r"QM1: waiting_for_storage", timeout=15)
    assert harness.calls() == []
    harness.efs.mount()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.stop()


def test_mount_timeout_is_a_failure_reported_at_once(harness: Harness) -> None:
    harness.efs.unmount()
    harness.configure(storage={"mount_timeout": "2s"}, health={"grace_period": "60s"})
    harness.start()
    m = harness.wait_log(r"instance is unhealthy \(storage not ready after (\d+)s", timeout=15)
    assert 2 <= int(m.group(1)) <= 4
    harness.wait_log(r"QM1: failed")
    harness.stop()


def test_two_bad_keys_exit_78_naming_both(harness: Harness) -> None:
    harness.configure(health={"grace_period": "soon"}, storage={"fstypes": ""})
    res = harness.cli("run", "--config", str(harness.conf))
    assert res.returncode == 78
    assert "[health] grace_period = 'soon'" in res.stderr
    assert "[storage] fstypes" in res.stderr
    assert "2 configuration error(s)" in res.stderr
    res = harness.cli("validate-config", "--config", str(harness.conf))
    assert res.returncode == 78


def test_unknown_run_as_user_is_a_configuration_error(harness: Harness) -> None:
    harness.configure(queue_manager={"run_as": "no-such-mq-user"})
    res = harness.cli("run", "--config", str(harness.conf))
    assert res.returncode == 78 and "run_as" in res.stderr


def test_usage_errors_exit_64(harness: Harness) -> None:
    assert harness.cli("frobnicate").returncode == 64
    assert harness.cli().returncode == 64
    assert harness.cli("run", "--bogus").returncode == 64
    res = harness.cli("--version")
    assert res.returncode == 0 and re.match(r"mqguard \d+\.\d+\.\d+", res.stdout)


def test_validate_config_print_and_env_var(harness: Harness) -> None:
    harness.configure()
    env = harness.env()
    env["MQGUARD_CONFIG"] = str(harness.conf)
    res = subprocess.run(["python3", "-m", "mqguard", "validate-config", "--print"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert re.search(r"^\[queue_manager\]\nname = QM1 +; REQUIRED", res.stdout, re.M)
    assert re.search(r"^grace_period = 5s +; ", res.stdout, re.M)


def test_check_reports_each_aspect_and_exit_codes(harness: Harness) -> None:
    res = harness.cli("check", "--config", str(harness.configure()))
    assert res.returncode == 1, res.stdout + res.stderr  # not created yet
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["storage", "queue", "listener"]
    assert lines[0].split()[1] == "ok"
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.stop()
    before = len(harness.calls())
    res = harness.cli("check", "--config", str(harness.conf))
    assert res.returncode == 0, res.stdout
    assert "QM1 running" in res.stdout and "accepts connections" in res.stdout
    assert {c["cmd"] for c in harness.calls()[before:]} == {"dspmq"}, "check must have no side effects"
    harness.knob("listener.off")
    harness.knob("children.linger", "0")  # the operator's strmqm below must not meet AMQ8041 leftovers
    os.kill(harness.controllers()[0], signal.SIGKILL)
    time.sleep(0.5)
    subprocess.run([f"{harness.bindir}/strmqm", "QM1"], capture_output=True, timeout=30)
    res = harness.cli("check", "--config", str(harness.conf))
    assert res.returncode == 1 and "refuses" in res.stdout
    harness.efs.freeze()
    try:
        start = time.monotonic()
        before = len(harness.calls())
        res = harness.cli("check", "--config", str(harness.conf), timeout=30)
        assert res.returncode == 1 and "did not finish" in res.stdout
        assert time.monotonic() - start < 15
        # issue 18: like the daemon, check asks MQ nothing while storage is bad (a dspmq would hang on it)
        assert "not checked while storage is bad" in res.stdout
        assert [c["cmd"] for c in harness.calls()[before:]] == []
    finally:
        harness.efs.thaw()


def test_check_exit_2_while_starting(harness: Harness) -> None:
    harness.configure()
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.stop()
    subprocess.run([f"{harness.bindir}/endmqm", "-i", "QM1"], capture_output=True, timeout=30)
    harness.knob("strmqm.delay", "5")
    proc = subprocess.Popen([f"{harness.bindir}/strmqm", "QM1"], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: "STARTING" in harness.dspmq(), 10, "STARTING")
        res = harness.cli("check", "--config", str(harness.conf))
        assert res.returncode == 2, res.stdout
    finally:
        proc.wait(timeout=30)


def test_json_log_format(harness: Harness) -> None:
    harness.configure(logging={"format": "json", "level": "info"})
    harness.start()
    harness.wait_log(r'"msg":"QM1: running"', timeout=30)
    harness.stop()
    for line in harness.log_text().splitlines():
        doc = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= set(doc)


def test_a_dead_hosts_stale_lock_is_waited_for_then_the_queue_manager_starts_here(harness: Harness) -> None:
    """Issue 15: single-instance "Running elsewhere" (a dead host's NFS lock, until its lease expires) is a wait
    (lock_wait), not a fault: no report although it outlasts grace_period, and a start once the lock clears."""
    creator = Harness(harness.tmp, harness.efs, host="host0")
    try:
        creator.create_by_hand()
    finally:
        creator.cleanup()
    holder = mqsim.hold_stale_lock(f"{harness.efs.path}/qmgrs/QM1", "host0", 8.0)
    try:
        harness.configure(health={"grace_period": "3s"}, queue_manager={"lock_wait": "1m"})
        harness.start()
        harness.wait_log(r"waiting for the queue manager's lock", timeout=30)
        assert harness.calls("strmqm") == []
        holder.wait(timeout=30)  # the lease expires
        harness.wait_log(r"QM1: running", timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert "instance is unhealthy" not in harness.log_text() and "QM1: failed" not in harness.log_text()
    assert [c["argv"] for c in harness.calls("strmqm")] == [["QM1"]]
    harness.stop()


def test_the_listener_probe_does_not_flood_mqs_error_log(harness: Harness) -> None:
    """Issue 15 item 14: a bare TCP connect every poll makes MQ log AMQ9209E each time (the simulator does too)."""
    harness.configure(health={"poll_interval": "0.5s"})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    time.sleep(10)  # 20 polls
    amqerr = mqsim.error_log(f"{harness.efs.path}/qmgrs/QM1/errors")
    figure("AMQ9209E entries in 10 s of 0.5 s polls", amqerr.count("AMQ9209E"))
    assert amqerr.count("AMQ9209E") <= 1
    harness.stop()


def test_mqs_own_diagnostics_of_a_failed_start_reach_the_log_status_and_metrics(harness: Harness) -> None:
    """Issue 15 item 13 / section 22: the real cause is in AMQERR01.LOG and FDC files, not in strmqm's output."""
    from tests.conftest import free_port
    harness.configure(metrics={"listen": f"127.0.0.1:{free_port()}"}, health={"grace_period": "30s"})
    harness.knob("strmqm.exit", "71")
    harness.start()
    line = harness.wait_log(r"MQ's own diagnostics after a failed (start|strmqm)[^\n]*", timeout=30).group(0)
    assert "AMQ6109E" in line and "FDC file AMQ" in line and "probe id XC130003" in line
    wait_until(lambda: any(e["id"] == "AMQ6109E" and e["source"] == "qmgr"
                           for e in json.loads(harness.get("/status")[1])["mq_errors"]), 10, "mq_errors in /status")
    _, metrics = harness.get("/metrics")
    assert re.search(rb'^mqguard_mq_error_messages_total\{severity="E"\} [1-9]', metrics, re.M)
    assert re.search(rb"^mqguard_mq_fdc_files_total [1-9]", metrics, re.M)
    status = harness.cli("status", "--config", str(harness.conf))
    assert "MQ's last messages" in status.stdout and "AMQ6109E" in status.stdout
    # issue 27: the evidence outlives the instance - the history on the shared storage carries the ids and FDCs

    def recorded() -> Any:
        res = harness.cli("history", "--config", str(harness.conf), "--json")
        return [e for e in json.loads(res.stdout)["events"] if e["event"] == "mq_errors"] if res.returncode == 0 \
            else None
    said = wait_until(recorded, 10, "an mq_errors event in the history")
    assert "AMQ6109E" in said[0]["detail"] and re.search(r"FDC AMQ\d+\.\d+\.FDC", said[0]["detail"]), said
    assert len(said[0]["detail"]) <= 300
    harness.stop()


def test_check_nagios_speaks_the_plugin_convention(harness: Harness) -> None:
    """Issue 27: `check` exits 1 unhealthy, 2 starting (the contract's codes), the reverse of Nagios. With --nagios
    it is a monitoring plugin: 0 OK, 1 WARNING (starting), 2 CRITICAL (unhealthy), 3 UNKNOWN (cannot tell), one
    status line first, performance data after '|'."""
    harness.configure()
    res = harness.cli("check", "--nagios", "--config", str(harness.conf))  # not created yet: MQ is not running
    assert res.returncode == 2 and res.stdout.startswith("MQGUARD CRITICAL - QM1: "), res.stdout
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.stop()
    res = harness.cli("check", "--nagios", "--config", str(harness.conf))
    first = res.stdout.splitlines()[0]
    assert res.returncode == 0 and first.startswith("MQGUARD OK - QM1 running") and "| storage_probe_ms=" in first, \
        res.stdout
    subprocess.run([f"{harness.bindir}/endmqm", "-i", "QM1"], capture_output=True, timeout=30)
    harness.knob("strmqm.delay", "5")
    proc = subprocess.Popen([f"{harness.bindir}/strmqm", "QM1"], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: "STARTING" in harness.dspmq(), 10, "STARTING")
        res = harness.cli("check", "--nagios", "--config", str(harness.conf))
        assert res.returncode == 1 and res.stdout.startswith("MQGUARD WARNING"), res.stdout
    finally:
        proc.wait(timeout=30)
    bad = harness.conf.parent / "broken.conf"
    bad.write_text("[queue_manager]\nname = QM1\nnonsense = 1\n")
    res = harness.cli("check", "--nagios", "--config", str(bad))
    assert res.returncode == 3 and res.stdout.startswith("MQGUARD UNKNOWN - "), (res.stdout, res.stderr)
