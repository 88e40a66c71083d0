"""The MQI/PCF view: library loading (with the real ibmmq wheel) and the
PCF-to-metrics mapping (with recorded PCF replies)."""

from __future__ import annotations

import datetime
import importlib.util
import json
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mqguard.mq import mqi

DATA = json.loads((Path(__file__).resolve().parents[2] / "data" / "pcf_replies.json").read_text())


def replies(name: str) -> List[Dict[int, Any]]:
    return [{int(k): (v.encode() if isinstance(v, str) else v) for k, v in r.items()} for r in DATA[name]]


def test_real_ibmmq_wheel_without_mq_client_is_reported_as_such() -> None:
    if importlib.util.find_spec("ibmmq") is None:
        pytest.fail("the ibmmq wheel must be installed for this test (make deps installs it)")
    lib, why = mqi.load_library(("ibmmq",))
    assert lib is None
    assert "ibmmq is installed but the MQ client library is missing" in why and "libmqm_r.so" in why


def test_library_not_installed() -> None:
    lib, why = mqi.load_library(("no_such_mq_library_xyz",))
    assert lib is None and why == "no_such_mq_library_xyz is not installed"


def test_both_candidates_are_explained() -> None:
    _, why = mqi.load_library(("ibmmq", "no_such_pymqi"))
    assert "ibmmq is installed" in why and "no_such_pymqi is not installed" in why


def test_qmgr_status_mapping_with_uptime() -> None:
    status, uptime, conns = mqi.map_qmgr_status(replies("inquire_q_mgr_status")[0], datetime.datetime(2026, 11, 25, 22, 0, 0))
    assert (status, uptime, conns) == (2, 3600.0, 23)


def test_queue_patterns_and_system_queues() -> None:
    qs = mqi.map_queues(replies("inquire_q"), ["*"])
    assert sorted(qs) == ["APP.ORDERS", "APP.REPLIES", "DEV.DEAD.LETTER"], "SYSTEM.* only when named"
    assert qs["APP.ORDERS"] == mqi.QueueStats(42, 5000, 2, 1)
    qs = mqi.map_queues(replies("inquire_q"), ["APP.*", "SYSTEM.DEAD.LETTER.QUEUE"])
    assert sorted(qs) == ["APP.ORDERS", "APP.REPLIES", "SYSTEM.DEAD.LETTER.QUEUE"]
    assert mqi.wanted_queue("SYSTEM.X", ["SYSTEM.*"]) and not mqi.wanted_queue("SYSTEM.X", ["*"])


def test_channels_seen_before_stay_at_inactive() -> None:
    ch = mqi.map_channels(replies("inquire_channel_status"), {"OLD.CHL": 3})
    assert ch == {"APP.SVRCONN": 3, "TO.QM2": 5, "OLD.CHL": 0}


class MQMIError(Exception):
    def __init__(self, reason: int) -> None:
        super().__init__(f"MQI error reason {reason}")
        self.reason = reason


class RecordedPcf:
    """Answers PCF inquiries from the recording; can fail like a broken connection."""

    def __init__(self, script: Dict[str, Any]) -> None:
        self.script = script
        self.calls: List[str] = []

    def MQCMD_INQUIRE_Q_MGR_STATUS(self) -> List[Dict[int, Any]]:
        self.calls.append("qmgr")
        if self.script.get("broken"):
            raise MQMIError(2009)
        return replies("inquire_q_mgr_status")

    def MQCMD_INQUIRE_Q(self, args: Dict[int, Any]) -> List[Dict[int, Any]]:
        assert args == {mqi.MQCA_Q_NAME: b"*", mqi.MQIA_Q_TYPE: mqi.MQQT_LOCAL}
        return replies("inquire_q")

    def MQCMD_INQUIRE_CHANNEL_STATUS(self, args: Dict[int, Any]) -> List[Dict[int, Any]]:
        if self.script.get("no_channels"):
            raise MQMIError(mqi.MQRCCF_CHL_STATUS_NOT_FOUND)
        return replies("inquire_channel_status")


def recorded_library(script: Dict[str, Any]) -> Any:
    state = {"connects": 0, "disconnects": 0}
    pcf = RecordedPcf(script)

    def connect(name: str) -> Any:
        state["connects"] += 1
        if script.get("refuse"):
            raise MQMIError(2059)
        return SimpleNamespace(disconnect=lambda: state.__setitem__("disconnects", state["disconnects"] + 1))

    return SimpleNamespace(connect=connect, PCFExecute=lambda qm: pcf, state=state, pcf=pcf)


def poller(lib: Any) -> mqi.PcfPoller:
    return mqi.PcfPoller(lib, "QM1", ["*"], 0.01, threading.Event(), now=lambda: datetime.datetime(2026, 11, 25, 22, 0))


def test_poller_publishes_a_view_and_collector_uses_mq_metric_samples_names(tmp_path: Path) -> None:
    lib = recorded_library({})
    p = poller(lib)
    p.poll_once()
    view = p.snapshot()
    assert view.connected and view.qmgr_status == 2 and view.connection_count == 23
    reg = CollectorRegistry()
    reg.register(mqi.PcfCollector(p.snapshot, "QM1"))
    get = reg.get_sample_value
    assert get("ibmmq_qmgr_status", {"qmgr": "QM1"}) == 2
    assert get("ibmmq_qmgr_uptime", {"qmgr": "QM1"}) == 3600
    assert get("ibmmq_qmgr_connection_count", {"qmgr": "QM1"}) == 23
    assert get("ibmmq_queue_depth", {"qmgr": "QM1", "queue": "APP.ORDERS"}) == 42
    assert get("ibmmq_queue_depth", {"qmgr": "QM1", "queue": "SYSTEM.DEAD.LETTER.QUEUE"}) is None
    assert get("ibmmq_queue_attribute_max_depth", {"qmgr": "QM1", "queue": "APP.ORDERS"}) == 5000
    assert get("ibmmq_channel_status", {"qmgr": "QM1", "channel": "TO.QM2"}) == 5
    assert get("mqguard_mqi_up", {"qmgr": "QM1"}) == 1
    text = generate_latest(reg).decode()
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    # The contract keeps IBM's name ibmmq_qmgr_connection_count (dashboards use it);
    # promtool's lint objects to a gauge ending in _count. That must be its only complaint.
    complaints = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    assert complaints == [
        'ibmmq_qmgr_connection_count non-histogram and non-summary metrics should not have "_count" suffix'
    ], complaints


def test_no_running_channels_is_not_an_error() -> None:
    p = poller(recorded_library({"no_channels": True}))
    p.poll_once()
    assert p.snapshot().channels == {}


def test_broken_connection_is_reconnected_and_shown_in_metrics() -> None:
    script: Dict[str, Any] = {"broken": True}
    lib = recorded_library(script)
    p = poller(lib)
    p.start()
    try:
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
        while lib.state["connects"] < 3 and datetime.datetime.now() < deadline:
            threading.Event().wait(0.01)
        assert lib.state["connects"] >= 3 and lib.state["disconnects"] >= 2
        view = p.snapshot()
        assert not view.connected and "2009" in view.error
        reg = CollectorRegistry()
        reg.register(mqi.PcfCollector(p.snapshot, "QM1"))
        assert reg.get_sample_value("mqguard_mqi_up", {"qmgr": "QM1"}) == 0
        script["broken"] = False
        while not p.snapshot().connected and datetime.datetime.now() < deadline + datetime.timedelta(seconds=5):
            threading.Event().wait(0.01)
        assert p.snapshot().connected
    finally:
        p.stop.set()


def test_a_start_releases_the_bindings_connection_first_and_it_stays_off_meanwhile() -> None:
    """Issue 15 item 15: mqguard's bindings connection would keep strmqm failing with AMQ8041 after a crash."""
    lib = recorded_library({})
    p = poller(lib)
    p.start()
    try:
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
        while not p.snapshot().connected and datetime.datetime.now() < deadline:
            threading.Event().wait(0.01)
        assert p.snapshot().connected and lib.state["disconnects"] == 0
        assert p.release(timeout=5)
        assert lib.state["disconnects"] == 1 and not p.snapshot().connected
        connects = lib.state["connects"]
        threading.Event().wait(0.3)  # 30 poll intervals: still off while the queue manager starts
        assert lib.state["connects"] == connects and "being started" in p.snapshot().error
    finally:
        p.stop.set()
        p.release(timeout=1)
