"""The instance going away, end to end: IMDSv2 announces it, mqguard ends the
queue manager cleanly while the instance is alive, completes the lifecycle
hook (heartbeating while the end takes long), and never starts MQ again."""

from __future__ import annotations

import json
import time
from typing import Dict, Iterator, List

import pytest

from tests.conftest import Harness
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.imds import ImdsServer

LIFECYCLE = "meta-data/autoscaling/target-lifecycle-state"


@pytest.fixture
def aws(moto: MotoAsg, imds: ImdsServer) -> Iterator[FaultProxy]:
    imds.paths["meta-data/instance-id"] = moto.instance_id
    imds.paths[LIFECYCLE] = "InService"
    proxy = FaultProxy(moto.url, []).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def configure(h: Harness, proxy: FaultProxy, imds: ImdsServer, **qm: str) -> None:
    h.configure(
        queue_manager={"stop_on_exit": "auto", **qm},
        health={"report": "autoscaling", "grace_period": "5s"},
        aws={"endpoint_url": proxy.url, "imds_url": imds.url, "launch_hook": "mq-launch",
             "termination_hook": "mq-terminate"},
    )


def completed(proxy: FaultProxy, hook: str) -> List[Dict[str, str]]:
    return [p for p in proxy.lifecycle if p["Action"] == "CompleteLifecycleAction" and p["LifecycleHookName"] == hook]


def test_termination_ends_mq_cleanly_then_completes_the_hook(
    harness: Harness, aws: FaultProxy, imds: ImdsServer, moto: MotoAsg
) -> None:
    configure(harness, aws, imds)
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.wait_log(r"completed lifecycle hook mq-launch with CONTINUE", timeout=20)
    assert completed(aws, "mq-launch")[0]["InstanceId"] == moto.instance_id
    strmqm = len(harness.calls("strmqm"))

    announced = time.monotonic()
    imds.paths[LIFECYCLE] = "Terminated"
    harness.wait_log(r"completed lifecycle hook mq-terminate with CONTINUE", timeout=30)
    print(f"\nFIGURE Terminated in IMDS to hook completed after a clean end: {time.monotonic() - announced:.2f} s")
    assert [c["argv"] for c in harness.calls("endmqm")] == [["-r", "-w", "QM1"]]
    assert "ENDED NORMALLY" in harness.dspmq()
    assert completed(aws, "mq-terminate")[0]["LifecycleActionResult"] == "CONTINUE"
    harness.wait_log(r"QM1: stopping")
    time.sleep(3)  # several polls: never started again, never reported
    assert len(harness.calls("strmqm")) == strmqm
    assert not any(action == "SetInstanceHealth" for action, _ in aws.seen)
    assert moto.health() == "Healthy"
    assert harness.stop() == 0
    assert "already ended for the termination" in harness.log_text()
    assert len(harness.calls("endmqm")) == 1


def test_heartbeats_while_a_slow_end_takes_its_time(harness: Harness, aws: FaultProxy, imds: ImdsServer) -> None:
    configure(harness, aws, imds, stop_timeout="4s")
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    harness.knob("clients.connected")  # endmqm -w waits the whole stop_timeout, then -i
    imds.paths[LIFECYCLE] = "Terminated"
    harness.wait_log(r"completed lifecycle hook mq-terminate", timeout=40)
    beats = [p for p in aws.lifecycle if p["Action"] == "RecordLifecycleActionHeartbeat"]
    assert len(beats) >= 2 and beats[0]["LifecycleHookName"] == "mq-terminate"
    assert [c["argv"][:-1] for c in harness.calls("endmqm")] == [["-r", "-w"], ["-r", "-i"]]
    first_complete = aws.lifecycle.index(completed(aws, "mq-terminate")[0])
    assert all(aws.lifecycle.index(b) < first_complete for b in beats), "heartbeats only before completion"
    harness.stop()


def test_spot_interruption_ends_mq_without_hooks(harness: Harness, moto: MotoAsg, imds: ImdsServer) -> None:
    imds.paths["meta-data/instance-id"] = moto.instance_id
    harness.configure(
        queue_manager={"stop_on_exit": "auto"},
        health={"report": "autoscaling"},
        aws={"endpoint_url": moto.url, "imds_url": imds.url},
    )
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    imds.paths["meta-data/spot/instance-action"] = json.dumps({"action": "terminate", "time": "2026-11-25T23:59:00Z"})
    harness.wait_log(r"a spot interruption is announced \(terminate at 2026-11-25T23:59:00Z\)", timeout=20)
    harness.wait_log(r"queue manager QM1 ended \(endmqm -r -w\)", timeout=30)
    assert harness.controllers() == []
    harness.stop()


def test_stop_on_exit_never_is_respected_when_terminating(
    harness: Harness, aws: FaultProxy, imds: ImdsServer
) -> None:
    configure(harness, aws, imds, stop_on_exit="never")
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    pids = harness.controllers()
    imds.paths[LIFECYCLE] = "Terminated"
    harness.wait_log(r"stop_on_exit = never: leaving the queue manager as it is", timeout=20)
    harness.wait_log(r"completed lifecycle hook mq-terminate", timeout=20)
    assert harness.calls("endmqm") == [] and harness.controllers() == pids
    harness.stop()
    assert harness.controllers() == pids


def test_sigterm_with_auto_while_imds_says_terminated(harness: Harness, aws: FaultProxy, imds: ImdsServer) -> None:
    """SIGTERM may come before the watch's next look: shutdown looks at IMDS once more."""
    configure(harness, aws, imds, stop_on_exit="auto")
    harness.configure(aws={"termination_hook": ""})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    imds.paths[LIFECYCLE] = "Terminated"
    assert harness.stop() == 0
    assert [c["argv"] for c in harness.calls("endmqm")] == [["-r", "-w", "QM1"]]
    assert harness.controllers() == []


def test_sigterm_is_not_held_up_by_a_dripping_imds(
    harness: Harness, aws: FaultProxy, imds: ImdsServer, moto: MotoAsg
) -> None:
    """IMDS answers one byte at a time: the stop takes one short look at it, then leaves MQ running."""
    configure(harness, aws, imds)
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    pid = harness.controllers()
    imds.drip = 0.5  # every answer now takes minutes; each read alone is quick
    stopped = time.monotonic()
    assert harness.stop(timeout=30) == 0
    took = time.monotonic() - stopped
    print(f"\nFIGURE SIGTERM to exit with a dripping IMDS: {took:.2f} s")
    assert took < 10, took
    assert harness.controllers() == pid, "a restart of mqguard must not take MQ down"
    assert "leaving queue manager QM1 as it is" in harness.log_text()


def test_termination_still_ends_mq_cleanly_while_paused(
    harness: Harness, aws: FaultProxy, imds: ImdsServer, moto: MotoAsg
) -> None:
    configure(harness, aws, imds)
    harness.configure(control={"socket": str(harness.tmp / "ctl" / "mqguard.sock")})
    harness.start()
    harness.wait_log(r"QM1: running", timeout=30)
    res = harness.cli("pause", "--for", "1h", "--reason", "investigation", "--config", str(harness.conf))
    assert res.returncode == 0, res.stderr
    harness.wait_log(r"QM1: paused")
    imds.paths[LIFECYCLE] = "Terminated"
    harness.wait_log(r"completed lifecycle hook mq-terminate with CONTINUE", timeout=30)
    assert [c["argv"] for c in harness.calls("endmqm")] == [["-r", "-w", "QM1"]], "ending MQ protects data: not supervision"
    assert "ENDED NORMALLY" in harness.dspmq()
    assert not any(action == "SetInstanceHealth" for action, _ in aws.seen)
