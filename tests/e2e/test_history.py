"""Failover evidence end to end (contract §23, issue 19): real mqguards on simulated hosts
sharing the FUSE "EFS", each in its own UTS namespace so each has its own host name (as
each EC2 instance has); the outage measured from outside is compared with the one
``mqguard history --json`` reports. Figures are printed as ``FIGURE``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from mqguard.history.events import iso
from tests.conftest import Harness, free_port, wait_until
from tests.peers.aws import MotoAsg
from tests.peers.efs import FakeEfs
from tests.peers.imds import ImdsServer

POLL = 1.0  # the harness's poll_interval: the tolerance of an outage mqguard measured


def own_host(h: Harness, name: str) -> Harness:
    """Run this host's mqguard in a UTS namespace of its own, named ``name``."""
    h.command = ["unshare", "--uts", sys.executable, "-c",
                 "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.executable, "
                 "[sys.executable, '-m', 'mqguard', *sys.argv[2:]])", name]
    return h


def history(h: Harness, *args: str) -> Dict[str, Any]:
    res = h.cli("history", "--config", str(h.conf), "--json", *args)
    assert res.returncode == 0, res.stderr
    doc: Dict[str, Any] = json.loads(res.stdout)
    return doc


def running(h: Harness) -> bool:
    return "STATUS(RUNNING)" in h.dspmq().upper()  # dspmq -n: upper case, no translation


def wait_for_episode(h: Harness, kind: str, timeout: float = 30) -> Dict[str, Any]:
    def closed() -> Any:
        eps = [e for e in history(h)["episodes"] if e["kind"] == kind and e["ended"]]
        return eps[-1] if eps else None
    try:
        return wait_until(closed, timeout, f"a closed {kind} episode in mqguard history", interval=0.5)  # type: ignore
    except AssertionError as exc:
        doc = history(h)
        seen = [(e["kind"], e["ended"], phases(e)) for e in doc["episodes"]]
        events = [(e["host"], e["event"], e["detail"][:60]) for e in doc["events"]]
        raise AssertionError(f"{exc}\nepisodes: {seen}\nevents: {events}") from None


def phases(ep: Dict[str, Any]) -> List[Tuple[str, str]]:
    """The episode's phases, without MQ's evidence (``mq_errors`` comes whenever MQ wrote something: its own test
    is in test_daemon.py)."""
    return [(p["host"], p["event"]) for p in ep["phases"] if p["event"] != "mq_errors"]


def check_outage(ep: Dict[str, Any], measured: float, what: str) -> None:
    print(f"\nFIGURE {what}: outage measured from outside {measured:.2f} s, by mqguard history "
          f"{ep['outage_seconds']:.2f} s")
    assert abs(ep["outage_seconds"] - measured) <= POLL, (ep["outage_seconds"], measured)


@pytest.fixture
def host_a(tmp_path: Path, efs: FakeEfs) -> Iterator[Harness]:
    h = own_host(Harness(tmp_path, efs, host="hostA"), "hostA")
    h.configure(health={"grace_period": "4s"})
    try:
        yield h
    finally:
        h.cleanup()


def test_a_crash_recovered_locally_is_one_recovery_episode(host_a: Harness) -> None:
    host_a.start()
    wait_until(lambda: running(host_a), 30, "running")
    wait_until(lambda: any(e["event"] == "running" for e in history(host_a)["events"]), 10, "running recorded")
    killed = time.time()
    os.kill(host_a.controllers()[0], signal.SIGKILL)
    wait_until(lambda: not running(host_a), 5, "the crash seen by dspmq", interval=0.01)
    wait_until(lambda: running(host_a), 30, "running again", interval=0.01)
    measured = time.time() - killed
    ep = wait_for_episode(host_a, "recovery")
    assert phases(ep)[:3] == [("hostA", "crash"), ("hostA", "bad"), ("hostA", "restart")]
    assert phases(ep)[-1] == ("hostA", "running")
    check_outage(ep, measured, "local recovery after kill -9")
    doc = history(host_a)
    started = [e for e in doc["events"] if e["event"] == "started"]
    assert started and started[0]["host"] == "hostA" and doc["starts"], "per-host start durations"
    text = host_a.cli("history", "--config", str(host_a.conf)).stdout
    assert "recovery on hostA" in text and "<- slowest" in text, text


def test_a_failover_to_a_replacement_host_is_one_failover_episode(
        tmp_path: Path, efs: FakeEfs, moto: MotoAsg, imds: ImdsServer) -> None:
    imds.paths["meta-data/instance-id"] = moto.instance_id
    a = own_host(Harness(tmp_path, efs, host="hostA"), "hostA")
    b = own_host(Harness(tmp_path, efs, host="hostB"), "hostB")
    a.configure(health={"grace_period": "3s", "restart_attempts": "1", "report": "autoscaling"},
                aws={"endpoint_url": moto.url, "imds_url": imds.url, "region": "us-east-1"})
    try:
        a.start()
        wait_until(lambda: running(a), 30, "A running")
        wait_until(lambda: any(e["event"] == "running" for e in history(a)["events"]), 10, "A's running recorded")
        a.knob("strmqm.exit", "1")  # restarts on A fail from now on: the instance must be replaced
        killed = time.time()
        os.kill(a.controllers()[0], signal.SIGKILL)
        wait_until(lambda: moto.health() == "Unhealthy", 60, "A reported Unhealthy to Auto Scaling")
        assert a.stop() == 0  # what the group's termination does to mqguard (the instance then goes)
        b.start()  # the replacement: registers the queue manager from EFS and starts it
        wait_until(lambda: running(b), 60, "B running", interval=0.01)
        measured = time.time() - killed
        ep = wait_for_episode(b, "failover")
        order = [e for _, e in phases(ep)]
        assert order[:2] == ["crash", "bad"] and "reported" in order, phases(ep)
        tail = [e for h, e in phases(ep) if h == "hostB"]
        assert tail == ["started", "storage_ready", "registered", "start_issued", "running"], tail
        a_host = phases(ep)[0][0]
        assert a_host == moto.instance_id, "A's file is named by its instance id"
        check_outage(ep, measured, "failover to a replacement host")
        assert history(a)["episodes"] == history(b)["episodes"], "every host reads the same history"
        advice = a.cli("history", "--config", str(a.conf), "--advise", "--asg-grace", "300", "--hook-timeout", "60")
        assert advice.returncode == 0 and "lifecycle hook timeout" in advice.stdout, advice.stdout
    finally:
        b.cleanup()
        a.cleanup()
        moto.client("autoscaling").set_instance_health(InstanceId=moto.instance_id, HealthStatus="Healthy")


@pytest.fixture
def pair(tmp_path: Path, efs: FakeEfs) -> Iterator[Tuple[Harness, Harness]]:
    a = own_host(Harness(tmp_path, efs, host="hostA"), "hostA")
    b = own_host(Harness(tmp_path, efs, host="hostB"), "hostB")
    for h in (a, b):
        h.configure(queue_manager={"multi_instance": "true", "stop_on_exit": "auto"},
                    health={"grace_period": "20s"})
    try:
        a.start()
        wait_until(lambda: running(a), 30, "A active")
        b.start()
        wait_until(lambda: "RUNNING AS STANDBY" in b.dspmq().upper(), 30,
                   "B standby")
        wait_until(lambda: any(e["event"] == "standby" for e in history(b)["events"]), 10, "standby recorded")
        yield a, b
    finally:
        b.cleanup()
        a.cleanup()


def test_a_standby_takeover_is_a_failover_episode(pair: Tuple[Harness, Harness]) -> None:
    a, b = pair
    killed = time.time()
    os.kill(a.controllers()[0], signal.SIGKILL)
    wait_until(lambda: running(b), 30, "B active", interval=0.01)
    measured = time.time() - killed
    ep = wait_for_episode(b, "failover")
    assert phases(ep)[0] == ("hostA", "crash") and ("hostB", "takeover") in phases(ep)
    check_outage(ep, measured, "multi-instance takeover")


def test_a_switchover_is_a_switchover_episode(pair: Tuple[Harness, Harness]) -> None:
    a, b = pair
    res = a.cli("switchover", "--yes", "--config", str(a.conf), timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    ep = wait_for_episode(b, "switchover")
    assert phases(ep)[0] == ("hostA", "switchover") and ("hostB", "takeover") in phases(ep)
    print(f"\nFIGURE switchover: no active instance for {ep['outage_seconds']:.2f} s")
    assert ep["outage_seconds"] < 10


def test_drills_are_marked_and_treated_as_failures(host_a: Harness) -> None:
    host_a.configure(control={"drill_interval": "0s"})  # several drills in a row (the limit: a unit test)
    host_a.start()
    wait_until(lambda: running(host_a), 30, "running")
    wait_until(lambda: any(e["event"] == "running" for e in history(host_a)["events"]), 10, "running recorded")
    res = host_a.cli("drill", "crash", "--config", str(host_a.conf))
    assert res.returncode != 0 and "--yes" in res.stderr, "without --yes (and no terminal) it asks, then refuses"
    asked = time.time()
    res = host_a.cli("drill", "crash", "--yes", "--config", str(host_a.conf))
    assert res.returncode == 0, res.stdout + res.stderr
    # The answer comes from the step that accepted the drill, and the kill follows it on the same thread: the
    # outage starts when the command returns (what came before is the CLI starting and one observation).
    killed = time.time()
    wait_until(lambda: not running(host_a), 5, "the drill's crash", interval=0.01)
    wait_until(lambda: running(host_a), 30, "recovered", interval=0.01)
    measured = time.time() - killed
    print(f"\nFIGURE drill crash: answered {killed - asked:.2f} s after the command started")
    ep = wait_for_episode(host_a, "drill")
    assert phases(ep)[:2] == [("hostA", "drill"), ("hostA", "crash")]
    assert ep["phases"][0]["detail"].startswith("crash, asked by "), "who asked is recorded"
    check_outage(ep, measured, "drill crash")
    # stop: endmqm -i that mqguard must treat as a failure, not as an operator's end
    res = host_a.cli("drill", "stop", "--yes", "--config", str(host_a.conf))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_until(lambda: len([e for e in history(host_a)["episodes"] if e["kind"] == "drill" and e["ended"]]) == 2,
               30, "the stop drill recovered")
    stop_ep = [e for e in history(host_a)["episodes"] if e["kind"] == "drill"][-1]
    events = [ev for _, ev in phases(stop_ep)]
    assert events[0] == "drill" and {"ended", "bad", "restart"} <= set(events[:4]), phases(stop_ep)
    assert events[-1] == "running"
    # refused while paused
    assert host_a.cli("pause", "--for", "5m", "--config", str(host_a.conf)).returncode == 0
    res = host_a.cli("drill", "unhealthy", "--yes", "--config", str(host_a.conf))
    assert res.returncode == 1 and "paused" in res.stderr, res.stderr
    assert host_a.cli("resume", "--config", str(host_a.conf)).returncode == 0
    res = host_a.cli("drill", "unhealthy", "--yes", "--config", str(host_a.conf))
    assert res.returncode == 0, res.stderr
    wait_until(lambda: any(e["event"] == "reported" and "dry run" in e["detail"]
                           for e in history(host_a)["events"]), 10, "the drill's report (report = log)")


def test_a_frozen_efs_never_stalls_the_loop_and_hostile_history_files_cost_only_their_lines(
        host_a: Harness, efs: FakeEfs) -> None:
    host_a.configure(metrics={"listen": f"127.0.0.1:{free_port()}"})
    host_a.start()
    wait_until(lambda: running(host_a), 30, "running")
    wait_until(lambda: any(e["event"] == "running" for e in history(host_a)["events"]), 10, "running recorded")
    cycles = lambda: json.loads(host_a.get("/status")[1])["cycles"]  # noqa: E731
    efs.freeze()
    frozen_at = time.time()
    try:
        before, began = cycles(), time.monotonic()
        os.kill(host_a.controllers()[0], signal.SIGKILL)  # an event to write while EFS hangs
        time.sleep(9)
        during = cycles() - before
        # each cycle waits probe_timeout (2 s) for the hung probe, then poll_interval (1 s): one per ~3 s
        print(f"\nFIGURE cycles in 9 s with EFS frozen and history events pending: {during} "
              "(poll 1 s + probe_timeout 2 s)")
        assert during >= 2, "the loop kept its cadence: the history writer blocked alone"
        assert time.monotonic() - began < 11
    finally:
        efs.thaw()
    # while EFS hung, the probe (or dspmq) could not answer: the episode starts with that "bad"
    stamp = iso(frozen_at)
    wait_until(lambda: any(e["event"] == "bad" and e["time"] >= stamp for e in history(host_a)["events"]),
               30, "the events of the hang written once EFS answered again")
    d = Path(efs.path, ".mqguard", "history")
    (d / "evil.jsonl").write_text('garbage\n{"time": "2099-01-01T00:00:00.000Z", "event": "running"}\n')
    (d / "link.jsonl").symlink_to("/etc/shadow")
    with open(d / "huge.jsonl", "wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    began = time.monotonic()
    res = host_a.cli("history", "--config", str(host_a.conf))
    took = time.monotonic() - began
    assert res.returncode == 0, res.stderr
    # garbage, the line from 2099, and the huge file's NULs (read as one line of its last 4 MiB)
    assert "3 line(s) skipped" in res.stdout and "refused: history/link.jsonl" in res.stdout, res.stdout
    print(f"\nFIGURE mqguard history with a planted link, garbage and a 100 MB file: {took:.2f} s")
    doc = history(host_a)
    assert {e["host"] for e in doc["events"]} == {"hostA"}


def test_history_on_unreadable_storage_exits_1(tmp_path: Path, efs: FakeEfs) -> None:
    h = Harness(tmp_path, efs)
    nowhere = tmp_path / "nowhere"
    h.configure(storage={"path": str(nowhere)},
                queue_manager={"data_dir": f"{nowhere}/qmgrs", "log_dir": f"{nowhere}/logs"})
    res = h.cli("history", "--config", str(h.conf))
    assert res.returncode == 1 and "cannot read" in res.stderr, res.stderr


def test_a_stop_drill_on_a_multi_instance_active_hands_over_and_never_ends_the_standby(
        pair: Tuple[Harness, Harness]) -> None:
    # endmqm without -s on the active instance ends every instance, the standby included (reference: endmqm):
    # a drill must end this host's instance the way mqguard's own ends do, or it takes the pair down
    a, b = pair
    res = a.cli("drill", "stop", "--yes", "--config", str(a.conf))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_until(lambda: running(b), 30, "B active after the drill", interval=0.05)
    assert [c["argv"] for c in a.calls("endmqm")] == [["-s", "-i", "QM1"]]
    assert b.calls("strmqm")[-1]["argv"] == ["-x", "QM1"] and len(b.calls("strmqm")) == 1, "B took over, not restarted"


def test_history_run_by_root_reads_as_the_mq_user(tmp_path: Path, efs: FakeEfs) -> None:
    """Issue 26: without the access point's POSIX user, root is squashed on EFS and `.mqguard` is mqm's 2770, so the
    operator's `sudo mqguard history` at 3 a.m. could read nothing. As root, mqguard history reads as the MQ user
    (also: root never reads files that every writer of the EFS controls). Shown here with a `.mqguard` only root
    may enter (root would read it) and one only the MQ user may."""
    import pwd

    from mqguard.history.events import Event

    if os.geteuid() != 0:
        pytest.skip("needs root: it shows that mqguard history, run as root, reads as the MQ user")
    user = pwd.getpwnam("nobody")
    h = Harness(tmp_path, efs)
    h.configure(queue_manager={"run_as": "nobody"})
    state = Path(efs.path) / ".mqguard"
    hist = state / "history"
    hist.mkdir(parents=True, exist_ok=True)
    (hist / "hostA.jsonl").write_text(Event(time.time() - 60, "hostA", "running", "QM1 running").line())
    for p in (state, hist, hist / "hostA.jsonl"):
        os.chown(p, user.pw_uid, user.pw_gid)
    for d in (Path(efs.path), state, hist):
        os.chmod(d, 0o755)  # as mqguard makes .mqguard (its parent /MQHA is mqm's 2770 on EFS)
    # the MQ user must reach the mount point: open the test's own directories above it for the test's duration
    opened = [d for d in Path(efs.path).parents if d != Path("/") and not os.stat(d).st_mode & 0o001]
    modes = {d: os.stat(d).st_mode & 0o7777 for d in opened}
    try:
        for d in opened:
            os.chmod(d, modes[d] | 0o001)
        res = h.cli("history", "--config", str(h.conf), "--json")
        assert res.returncode == 0, res.stderr
        assert [e["event"] for e in json.loads(res.stdout)["events"]] == ["running"]
        # ... and it really is the MQ user reading: a .mqguard only root may enter is unreadable now
        os.chown(state, 0, 0)
        os.chmod(state, 0o700)
        res = h.cli("history", "--config", str(h.conf), "--json")
        assert res.returncode == 1 and "Permission denied" in res.stderr, (res.stdout, res.stderr)
        assert "as nobody" in res.stderr, "the message says whose access failed"
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)


def test_history_since_takes_the_helps_own_example(host_a: Harness) -> None:
    """Issue 27: `history --since 7d`, the help's own example, exited 64."""
    for since in ("7d", "1h30m", "90s"):
        res = host_a.cli("history", "--config", str(host_a.conf), "--since", since)
        assert res.returncode == 0, (since, res.stderr)
    res = host_a.cli("history", "--config", str(host_a.conf), "--since", "7 days")
    assert res.returncode == 64 and "1h30m" in res.stderr, res.stderr
