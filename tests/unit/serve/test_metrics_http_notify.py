"""The metrics collector (own registry, real promtool), the HTTP endpoints (a
real server on port 0), systemd notify (real datagram sockets) and journal fields."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from prometheus_client import generate_latest

from mqguard.base import logsetup
from mqguard.base.notify import Notifier
from mqguard.base.telemetry import Telemetry
from mqguard.serve.http import HttpEndpoint, health_verdict
from mqguard.serve.metrics import MqguardCollector, build_registry
from mqguard.supervisor.snapshot import Snapshot, summary_line

NOW = 1_800_000_000.0


MONO = 5000.0  # the monotonic "now" of the collector and the endpoints in these tests


def snap(**kw: Any) -> Snapshot:
    base: Dict[str, Any] = dict(
        version="0.1.0", qmgr="QM1", state="running", healthy=True, qmgr_status="running", qmgr_detail="",
        storage_path="/var/mqm", storage_ok=True, storage_detail="mounted", listener_port=1414, listener_ok=True,
        bad_since=None, bad_seconds=0.0, restarts=2, reported_unhealthy=False, last_cycle=NOW - 1, verdict="running",
        qmgr_healthy=True, cycle_at=MONO - 1,
    )
    base.update(kw)
    return Snapshot(**base)




def registry_for(s: Optional[Snapshot], tel: Optional[Telemetry] = None, wall: float = NOW) -> Any:
    tel = tel or Telemetry()
    collector = MqguardCollector(lambda: (s, tel), "QM1", "/var/mqm", 1414, wall=lambda: wall,
                                 monotonic=lambda: MONO)
    return build_registry([collector])


def test_the_bad_episode_ages_by_the_monotonic_clock_not_the_wall() -> None:
    """Issue 18 item 7: bad_seconds was monotonic in the snapshot but wall time in the metric."""
    bad = snap(state="recovering", healthy=False, bad_since=NOW - 40, bad_seconds=40.0, composed_at=MONO - 2)
    for wall in (NOW, NOW + 3600, NOW - 3600):  # the wall clock stepped by an hour either way
        assert registry_for(bad, wall=wall).get_sample_value("mqguard_bad_seconds") == 42
    assert registry_for(snap()).get_sample_value("mqguard_bad_seconds") == 0


def test_every_contract_metric_with_labels_and_zero_series() -> None:
    tel = Telemetry()
    tel.command("dspmq", 0.12, True)
    tel.command("strmqm", 3.0, False)
    tel.aws_call("SetInstanceHealth", "throttled")
    tel.probe(0.004)
    tel.cycle(0.2)
    reg = registry_for(snap(state="recovering", healthy=False, qmgr_status="ended_unexpectedly", qmgr_healthy=False,
                            bad_since=NOW - 42, bad_seconds=40.0, composed_at=MONO - 2, listener_ok=False,
                            restart_budget_remaining=4), tel)
    g = reg.get_sample_value
    assert g("mqguard_build_info", {"version": "0.1.0"}) == 1
    assert g("mqguard_state", {"mqguard_state": "recovering"}) == 1
    assert g("mqguard_state", {"mqguard_state": "running"}) == 0
    assert g("mqguard_qmgr_up", {"qmgr": "QM1"}) == 0
    assert g("mqguard_qmgr_status", {"qmgr": "QM1", "status": "ended_unexpectedly"}) == 1
    assert g("mqguard_qmgr_status", {"qmgr": "QM1", "status": "running_as_standby"}) == 0
    assert g("mqguard_qmgr_restarts_total", {"qmgr": "QM1"}) == 2
    assert g("mqguard_restart_budget_remaining", {}) == 4
    assert g("mqguard_listener_up", {"qmgr": "QM1", "port": "1414"}) == 0
    assert g("mqguard_storage_up", {"path": "/var/mqm"}) == 1
    assert g("mqguard_storage_probe_seconds_count", {"path": "/var/mqm"}) == 1
    assert g("mqguard_command_seconds_count", {"command": "dspmq"}) == 1
    assert g("mqguard_command_seconds_count", {"command": "crtmqm"}) == 0
    assert g("mqguard_command_failures_total", {"command": "strmqm"}) == 1
    assert g("mqguard_command_failures_total", {"command": "endmqm"}) == 0
    assert g("mqguard_bad_seconds") == 42
    assert g("mqguard_unhealthy_reported") == 0
    assert g("mqguard_aws_calls_total", {"operation": "SetInstanceHealth", "result": "throttled"}) == 1
    assert g("mqguard_aws_calls_total", {"operation": "CompleteLifecycleAction", "result": "ok"}) == 0
    assert g("mqguard_cycle_seconds_count") == 1
    assert g("mqguard_last_cycle_timestamp_seconds") == NOW - 1
    assert g("process_resident_memory_bytes") is not None, "standard process metrics"


def test_exposition_passes_promtool() -> None:
    text = generate_latest(registry_for(snap())).decode()
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "# TYPE mqguard_qmgr_restarts_total counter" in text


def test_qmgr_up_follows_the_queue_manager_not_the_storage() -> None:
    reg = registry_for(snap(state="recovering", healthy=False, storage_ok=False, bad_since=NOW - 3))
    assert reg.get_sample_value("mqguard_qmgr_up", {"qmgr": "QM1"}) == 1
    assert reg.get_sample_value("mqguard_storage_up", {"path": "/var/mqm"}) == 0


def test_before_the_first_cycle() -> None:
    reg = registry_for(None)
    assert reg.get_sample_value("mqguard_state", {"mqguard_state": "waiting_for_storage"}) == 1
    assert reg.get_sample_value("mqguard_qmgr_up", {"qmgr": "QM1"}) == 0


def test_no_global_registry_side_effects_on_import() -> None:
    from prometheus_client import REGISTRY

    names = {m.name for m in REGISTRY.collect()}
    assert not any(n.startswith("mqguard") for n in names)


def test_health_verdict() -> None:
    ok, body = health_verdict(snap(), stale_after=30, now=MONO)
    assert ok and body["healthy"] and body["state"] == "running"
    ok, body = health_verdict(snap(healthy=False, state="failed", bad_reasons=["queue manager ended"]), 30, MONO)
    assert not ok and body["reasons"] == ["queue manager ended"]
    ok, body = health_verdict(snap(cycle_at=MONO - 100), stale_after=30, now=MONO)
    assert not ok and "stalled" in body["reasons"][0]
    assert health_verdict(None, 30, MONO)[0] is False


def test_staleness_is_judged_by_the_monotonic_clock_not_the_wall() -> None:
    """Issue 24 item 11: /healthz, /active and /standby judged staleness by the wall clock; a step of it (NTP, a
    resumed VM) made a live loop look stalled, or a stalled one look live."""
    from mqguard.serve.http import role_verdict

    stepped = snap(last_cycle=NOW - 3600, cycle_at=MONO - 1)  # the wall jumped an hour; the loop is fresh
    assert health_verdict(stepped, 30, MONO)[0] is True
    assert role_verdict(stepped, "active", 30, MONO)[0] is True
    stalled = snap(last_cycle=NOW, cycle_at=MONO - 100)  # the wall says "just now"; no cycle for 100 s
    assert health_verdict(stalled, 30, MONO)[0] is False
    assert role_verdict(stalled, "active", 30, MONO)[0] is False


def test_before_the_first_snapshot_http_and_metrics_name_the_same_state() -> None:
    """Issue 24 item 11: HTTP said `starting` while the metrics said `waiting_for_storage`."""
    from mqguard.serve.http import role_verdict

    state = next(labels["mqguard_state"] for labels, value in
                 ((s.labels, s.value) for m in registry_for(None).collect() for s in m.samples
                  if s.name == "mqguard_state") if value == 1)
    assert health_verdict(None, 30, MONO)[1]["state"] == state == "waiting_for_storage"
    assert role_verdict(None, "active", 30, MONO)[1]["state"] == state


@pytest.fixture
def endpoint() -> Any:
    holder: Dict[str, Optional[Snapshot]] = {"snap": snap(last_cycle=time.time(), cycle_at=time.monotonic())}
    ep = HttpEndpoint("127.0.0.1", 0, lambda: holder["snap"], registry_for(holder["snap"]), stale_after=30)
    ep.start()
    try:
        yield ep, holder
    finally:
        ep.stop()


def get(ep: HttpEndpoint, path: str) -> Tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ep.port}{path}", timeout=5) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers["Content-Type"]


def test_http_endpoints(endpoint: Any) -> None:
    ep, holder = endpoint
    code, body, ctype = get(ep, "/healthz")
    assert code == 200 and json.loads(body)["healthy"] is True and ctype == "application/json"
    code, body, _ = get(ep, "/status")
    doc = json.loads(body)
    assert code == 200
    for key in ("state", "qmgr", "qmgr_status", "storage_ok", "listener_ok", "bad_since", "restarts",
                "reported_unhealthy", "last_cycle", "version"):
        assert key in doc
    assert isinstance(doc["restarts"], int) and doc["bad_since"] is None
    assert doc["last_cycle"].endswith("Z")
    code, body, ctype = get(ep, "/metrics")
    assert code == 200 and b"mqguard_qmgr_up" in body and ctype.startswith("text/plain")
    holder["snap"] = replace(holder["snap"], healthy=False, state="recovering", bad_since=time.time() - 5)
    code, body, _ = get(ep, "/healthz")
    assert code == 503 and json.loads(body)["state"] == "recovering"
    code, body, _ = get(ep, "/status")
    assert json.loads(body)["bad_since"].endswith("Z")
    assert get(ep, "/nope")[0] == 404


def test_openmetrics_negotiation(endpoint: Any) -> None:
    ep, _ = endpoint
    req = urllib.request.Request(f"http://127.0.0.1:{ep.port}/metrics",
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read().decode()
    assert "# TYPE mqguard_state stateset" in body and body.rstrip().endswith("# EOF")


def test_summary_lines() -> None:
    assert summary_line(snap(), 10, "10m", "autoscaling") == \
        "queue manager QM1 running; EFS /var/mqm ok; listener 1414 ok; healthy"
    line = summary_line(snap(state="waiting_for_storage", storage_ok=False, storage_detail="/var/mqm is not a mount point"),
                        42, "10m", "autoscaling")
    assert line == "waiting for EFS mount /var/mqm (42s of 10m): /var/mqm is not a mount point"
    line = summary_line(snap(state="failed", healthy=False, reported_unhealthy=True, qmgr_status="ended_unexpectedly",
                             bad_reasons=["queue manager ended_unexpectedly"]), 0, "10m", "autoscaling")
    assert "FAILED: reported Unhealthy to Auto Scaling" in line and "\n" not in line


def datagram_socket(tmp_path: Path, abstract: bool) -> Tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"mqguard-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        addr = "@" + name
    else:
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
    sock.settimeout(2)
    return sock, addr


@pytest.mark.parametrize("abstract", [False, True])
@pytest.mark.parametrize("use_library", [False, True])
def test_notify_protocol(tmp_path: Path, abstract: bool, use_library: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if use_library:
        pytest.importorskip("systemd.daemon", reason="systemd-python is not installed")
    sock, addr = datagram_socket(tmp_path, abstract)
    env = {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    try:
        if use_library:  # the library reads the process environment
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            n = Notifier()
            assert n._library is not None
        else:
            n = Notifier(env, use_library=False)
        assert n.watchdog_interval == 2.0
        n.ready("starting")
        n.status("queue manager QM1 running; healthy")
        n.status("queue manager QM1 running; healthy")  # unchanged: not sent again
        n.watchdog()
        n.stopping()
        got = [sock.recv(4096).decode() for _ in range(4)]
        assert got[0].startswith("READY=1\nSTATUS=starting")
        assert got[1] == "STATUS=queue manager QM1 running; healthy"
        assert got[2] == "WATCHDOG=1"
        assert got[3].startswith("STOPPING=1")
    finally:
        sock.close()


def test_notify_is_silent_without_systemd_and_ignores_foreign_watchdog() -> None:
    n = Notifier({})
    assert not n.enabled and not n.send("READY=1")
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None


def test_journal_fields_via_systemd_python() -> None:
    pytest.importorskip("systemd.journal", reason="systemd-python is not installed")
    sent: List[Dict[str, Any]] = []
    def sender(message: str, /, **fields: Any) -> None:  # journal.send's shape
        sent.append(dict(fields, MESSAGE=message))

    handler = logsetup.journal_handler(sender=sender)
    assert handler is not None
    handler.addFilter(logsetup.Context("QM1", lambda: "recovering"))
    logger = logging.getLogger("mqguard.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("queue manager %s ended", "QM1")
    finally:
        logger.removeHandler(handler)
    assert sent[0]["QMGR"] == "QM1" and sent[0]["MQGUARD_STATE"] == "recovering"
    assert sent[0]["SYSLOG_IDENTIFIER"] == "mqguard" and "queue manager QM1 ended" in sent[0]["MESSAGE"]
    assert sent[0]["PRIORITY"] == "4"


def test_json_log_lines_carry_context() -> None:
    import io

    buf = io.StringIO()
    logsetup.setup("info", "json", stream=buf, context=logsetup.Context("QM1", lambda: "running"))
    try:
        logging.getLogger("mqguard.test").info("hello %s", "world")
    finally:
        logsetup.setup("warning", "text")
    doc = json.loads(buf.getvalue().splitlines()[-1])
    assert doc["msg"] == "hello world" and doc["qmgr"] == "QM1" and doc["mqguard_state"] == "running"


def test_status_shows_aws_error_without_account_or_role_and_no_mount_source() -> None:
    err = {"operation": "SetInstanceHealth", "code": "AccessDenied", "since": NOW - 60,
           "message": "User: arn:aws:sts::123456789012:assumed-role/mq-role/i-0abc is not authorized"}
    doc = snap(aws_error=err, report_check="error: account 123456789012 denied").to_json()
    assert doc["aws_error"]["code"] == "AccessDenied" and doc["aws_error"]["operation"] == "SetInstanceHealth"
    assert doc["aws_error"]["since"].endswith("Z")
    text = json.dumps(doc)
    assert "123456789012" not in text and "mq-role" not in text and "<arn>" in text
    assert snap().to_json()["aws_error"] is None
