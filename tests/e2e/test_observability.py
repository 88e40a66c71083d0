"""Observability of a real ``mqguard run``: the real Prometheus server scraping it,
systemd notify datagrams on a real socket, /healthz while EFS is frozen,
``mqguard status``, the MQI view with the real ibmmq wheel, SIGHUP reload."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.conftest import Harness, free_port, wait_until
from tests.peers.prometheus import Prometheus


def figure(name: str, value: float, unit: str = "s") -> None:
    print(f"\nFIGURE {name}: {value:.3f} {unit}")


@pytest.fixture
def served(harness: Harness) -> Harness:
    harness.http_port = free_port()  # type: ignore[attr-defined]
    harness.configure(metrics={"listen": f"127.0.0.1:{harness.http_port}"})  # type: ignore[attr-defined]
    return harness


def http(h: Harness, path: str, timeout: float = 5) -> Tuple[int, bytes]:
    return h.get(path, timeout)


class NotifySocket:
    """A real systemd-style notify socket collecting datagrams."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: List[Tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def having(self, prefix: str) -> List[Tuple[float, str]]:
        return [(t, m) for t, m in self.messages if any(line.startswith(prefix) for line in m.splitlines())]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    try:
        yield ns
    finally:
        ns.close()


def start_with_env(h: Harness, extra: Dict[str, str]) -> None:
    h.configure()
    env = h.env()
    env.update(extra)
    h._log_fh = open(h.log, "ab")  # type: ignore[attr-defined]
    h.proc = subprocess.Popen(
        ["python3", "-m", "mqguard", "run", "--config", str(h.conf)], env=env,
        stdout=h._log_fh, stderr=subprocess.STDOUT,  # type: ignore[attr-defined]
    )


def test_promtool_passes_on_a_live_scrape_and_healthz_flips(served: Harness) -> None:
    served.configure(health={"grace_period": "3s", "restart_attempts": "1"})
    served.start()
    served.wait_log(r"QM1: running", timeout=30)
    code, body = http(served, "/metrics")
    assert code == 200
    res = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert res.returncode == 0, res.stderr
    assert http(served, "/healthz")[0] == 200
    served.knob("strmqm.exit", "71")
    os.kill(served.controllers()[0], signal.SIGKILL)
    wait_until(lambda: http(served, "/healthz")[0] == 503, 10, "/healthz 503")
    doc = json.loads(http(served, "/status")[1])
    assert doc["state"] in ("recovering", "failed") and doc["qmgr_status"] == "ended_unexpectedly"
    assert doc["bad_since"].endswith("Z")
    served.unknob("strmqm.exit")
    served.cli("check", "--config", str(served.conf))  # no side effects
    subprocess.run([f"{served.bindir}/strmqm", "QM1"], capture_output=True, timeout=30)  # an operator fixes it
    wait_until(lambda: http(served, "/healthz")[0] == 200, 15, "/healthz 200 again")
    served.stop()


def test_mqguard_status_command_and_exit_codes(served: Harness) -> None:
    res = served.cli("status", "--config", str(served.conf))
    assert res.returncode == 1 and "no mqguard daemon answers" in res.stderr
    served.configure(health={"grace_period": "2s", "restart_attempts": "0"})
    served.start()
    served.wait_log(r"QM1: running", timeout=30)
    res = served.cli("status", "--config", str(served.conf))
    assert res.returncode == 0 and "queue manager QM1 running" in res.stdout and "healthy" in res.stdout
    res = served.cli("status", "--config", str(served.conf), "--json")
    doc = json.loads(res.stdout)
    assert doc == json.loads(http(served, "/status")[1]) | {"last_cycle": doc["last_cycle"], "cycles": doc["cycles"],
                                                             "bad_seconds": doc["bad_seconds"]}
    os.kill(served.controllers()[0], signal.SIGKILL)
    wait_until(lambda: served.cli("status", "--config", str(served.conf)).returncode == 2, 10, "degraded (2)")
    wait_until(lambda: served.cli("status", "--config", str(served.conf)).returncode == 1, 15, "failed (1)")
    served.stop()


def test_endpoints_answer_fast_while_efs_is_frozen(served: Harness) -> None:
    served.configure(health={"grace_period": "60s"}, storage={"probe_timeout": "500ms"})
    served.start()
    served.wait_log(r"QM1: running", timeout=30)
    served.efs.freeze()
    try:
        wait_until(lambda: http(served, "/healthz")[0] == 503, 10, "/healthz 503 while frozen")
        worst = 0.0
        for _ in range(50):
            for path in ("/healthz", "/metrics", "/status"):
                start = time.monotonic()
                code, _ = http(served, path, timeout=1)
                worst = max(worst, time.monotonic() - start)
                assert code in (200, 503)
        figure("worst endpoint latency over 150 requests while EFS frozen", worst * 1000, "ms")
        assert worst < 1.0
        doc = json.loads(http(served, "/status")[1])
        assert doc["storage_ok"] is False
    finally:
        served.efs.thaw()
    wait_until(lambda: http(served, "/healthz")[0] == 200, 15, "/healthz 200 after thaw")
    served.stop()


def test_notify_ready_status_watchdog_stopping_from_a_real_run(harness: Harness, notify_socket: NotifySocket) -> None:
    start_with_env(harness, {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"})
    harness.wait_log(r"QM1: running", timeout=30)
    wait_until(lambda: notify_socket.having("STATUS=queue manager QM1 running"), 10, "STATUS running")
    time.sleep(2.5)
    assert harness.stop() == 0
    msgs = [m for _, m in notify_socket.messages]
    assert msgs[0].startswith("READY=1"), msgs[:3]
    expected = f"STATUS=queue manager QM1 running; EFS {harness.efs.path} ok; listener {harness.port} ok; healthy"
    assert expected in msgs
    pings = [t for t, _ in notify_socket.having("WATCHDOG=1")]
    assert len(pings) >= 3
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    figure("max gap between WATCHDOG=1 (WatchdogSec=2s, poll 1s)", max(gaps))
    assert max(gaps) < 2.0, "pings must come at least every WatchdogSec"
    assert notify_socket.having("STOPPING=1")


def test_a_wedged_cycle_stops_the_watchdog_pings(harness: Harness, notify_socket: NotifySocket) -> None:
    # dspmq hangs and command_timeout is an hour: the cycle wedges for real.
    harness.configure(health={"command_timeout": "1h"}, queue_manager={"start_timeout": "2h"})
    start_with_env(harness, {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"})
    harness.wait_log(r"QM1: running", timeout=30)
    wait_until(lambda: len(notify_socket.having("WATCHDOG=1")) >= 2, 10, "watchdog pings")
    harness.knob("dspmq.hang")
    wedged_at = time.monotonic()
    time.sleep(3)
    late = [t for t, _ in notify_socket.having("WATCHDOG=1") if t > wedged_at + 1.0]
    assert late == [], "a wedged cycle must not ping the watchdog"
    harness.proc.kill()  # type: ignore[union-attr]


def test_sighup_reloads_with_reloading_and_ready(harness: Harness, notify_socket: NotifySocket) -> None:
    start_with_env(harness, {"NOTIFY_SOCKET": notify_socket.path})
    harness.wait_log(r"QM1: running", timeout=30)
    harness.configure(health={"grace_period": "7s"})
    harness.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    harness.wait_log(r"configuration reloaded", timeout=10)
    # the datagrams were sent before that line was written, but the test's reader thread may not have read them
    # yet on a busy machine (a fresh-clone run under load once looked too early)
    wait_until(lambda: notify_socket.having("RELOADING=1") and len(notify_socket.having("READY=1")) >= 2, 10,
               "RELOADING=1 and the second READY=1 read")
    reloading = notify_socket.having("RELOADING=1")
    assert reloading and "MONOTONIC_USEC=" in reloading[0][1]
    readies = notify_socket.having("READY=1")
    assert len(readies) == 2 and readies[1][0] >= reloading[0][0]
    harness.configure(health={"report": "autoscaling"})
    mark = len(harness.log_text())
    harness.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    harness.wait_log(r"report = autoscaling takes effect after a restart of mqguard; still report = log", after=mark)
    harness.configure(health={"grace_period": "never", "report": "log"})
    harness.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    harness.wait_log(r"reload rejected, keeping the running configuration", timeout=10)
    assert harness.proc.poll() is None  # type: ignore[union-attr]
    harness.stop()


def test_ibmmq_installed_without_mq_client_runs_on_dspmq_and_says_so_once(harness: Harness) -> None:
    import importlib.util

    if importlib.util.find_spec("ibmmq") is None:
        pytest.fail("the ibmmq wheel must be installed (make deps)")
    harness.configure(metrics={"pcf": "auto"}, logging={"level": "info"})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    time.sleep(1.5)
    harness.stop()
    text = harness.log_text()
    lines = [line for line in text.splitlines() if "MQI/PCF metrics off" in line]
    assert len(lines) == 1 and " INFO " in lines[0]
    assert "ibmmq is installed but the MQ client library is missing" in lines[0]


def test_pcf_on_without_mq_client_is_a_configuration_error(harness: Harness) -> None:
    harness.configure(metrics={"pcf": "on"})
    res = harness.cli("run", "--config", str(harness.conf))
    assert res.returncode == 78 and "[metrics] pcf" in res.stderr and "libmqm" in res.stderr


def test_metrics_port_in_use_fails_clearly(served: Harness) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", served.http_port))  # type: ignore[attr-defined]
        s.listen(1)
        res = served.cli("run", "--config", str(served.configure()), timeout=30)
    assert res.returncode == 1 and "cannot start" in res.stderr


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="the Prometheus server (Debian package prometheus) is not installed")
def test_real_prometheus_scrapes_qmgr_up(served: Harness, tmp_path: Path) -> None:
    served.configure(health={"grace_period": "30s", "restart_attempts": "1"})
    served.start()
    served.wait_log(r"QM1: running", timeout=30)
    prom = Prometheus(str(PROMETHEUS), tmp_path, f"127.0.0.1:{served.http_port}")  # type: ignore[attr-defined]
    query = prom.query
    try:
        wait_until(lambda: query('mqguard_qmgr_up{qmgr="QM1"}') == 1.0, 30, "Prometheus sees qmgr_up 1", interval=0.5)
        assert query('mqguard_state{mqguard_state="running"}') == 1.0
        served.knob("strmqm.exit", "71")
        os.kill(served.controllers()[0], signal.SIGKILL)
        wait_until(lambda: query('mqguard_qmgr_up{qmgr="QM1"}') == 0.0, 30, "Prometheus sees qmgr_up 0", interval=0.5)
        wait_until(lambda: (query('mqguard_qmgr_restarts_total{qmgr="QM1"}') or 0) >= 1, 30,
                   "Prometheus sees the local restart attempt", interval=0.5)
        wait_until(lambda: query('mqguard_state{mqguard_state="recovering"}') == 1.0
                   or query('mqguard_state{mqguard_state="failed"}') == 1.0, 30, "recovering/failed", interval=0.5)
    finally:
        prom.stop()
    served.stop()
