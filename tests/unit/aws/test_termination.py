"""Going-away detection from IMDSv2 (a real server), pure interpretation, and the
lifecycle-hook calls through the fault proxy in front of moto."""

from __future__ import annotations

import json
import threading

import pytest

from mqguard.aws.autoscaling import AutoScaling
from mqguard.aws.imds import Imds
from mqguard.aws.lifecyclehooks import Hooks, heartbeat_interval
from mqguard.aws.termination import SPOT, TERMINATING, TerminationWatch, interpret
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.imds import ImdsServer


def test_interpret() -> None:
    assert interpret(None, None) is None
    assert interpret("InService", None) is None
    assert interpret("Warmed:Stopped", None) is None
    kind, why = interpret("Terminated", None)  # type: ignore[misc]
    assert kind == TERMINATING and "Terminated" in why
    kind, why = interpret("InService", json.dumps({"action": "terminate", "time": "2026-11-25T23:30:00Z"}))  # type: ignore[misc]
    assert kind == SPOT and "terminate at 2026-11-25T23:30:00Z" in why
    # an answer that is not a real notice is no notice (it used to end the queue manager)
    for garbage in ("garbage", "{}", '{"action": "terminate"}', '{"action": "dance", "time": "2026-11-25T23:30:00Z"}',
                    '["terminate"]', '{"action": "stop", "time": "soon"}'):
        assert interpret(None, garbage) is None, garbage


def test_watch_ignores_a_garbage_spot_notice(imds: ImdsServer) -> None:
    imds.paths["meta-data/spot/instance-action"] = "<html>502 Bad Gateway</html>" * 20
    woke = threading.Event()
    watch = TerminationWatch(Imds(imds.url), 0.05, threading.Event(), woke.set)
    assert watch.check() is None and watch.reason is None and not woke.is_set()


def test_watch_sees_termination_through_imdsv2(imds: ImdsServer) -> None:
    woke = threading.Event()
    watch = TerminationWatch(Imds(imds.url), 0.05, threading.Event(), woke.set)
    imds.paths["meta-data/autoscaling/target-lifecycle-state"] = "InService"
    assert watch.check() is None and not woke.is_set()
    watch.start()
    imds.paths["meta-data/autoscaling/target-lifecycle-state"] = "Terminated"
    assert woke.wait(5)
    assert watch.kind == TERMINATING
    assert all(" 401" not in r for r in imds.requests)
    imds.paths["meta-data/autoscaling/target-lifecycle-state"] = "InService"
    assert watch.check() is not None, "once going away, always going away"


def test_unreachable_imds_never_means_going_away() -> None:
    watch = TerminationWatch(Imds("http://127.0.0.1:9", timeout=0.2, sleep=lambda s: None), 0.05,
                             threading.Event(), lambda: None)
    assert watch.check() is None and watch.kind is None


def test_hooks_complete_and_heartbeat(moto: MotoAsg, imds: ImdsServer) -> None:
    imds.paths["meta-data/instance-id"] = moto.instance_id
    proxy = FaultProxy(moto.url, []).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = AutoScaling(Imds(imds.url), "us-east-1", proxy.url, observe=lambda op, res: calls.append((op, res)))
        hooks = Hooks(asg, "", "mq-launch", "mq-terminate", threading.Event())
        hooks.complete_termination()
        assert hooks.termination_completed
        with hooks.heartbeats(0.1) as beats:
            threading.Event().wait(0.35)
        assert beats.sent >= 2
        done = [p for p in proxy.lifecycle if p["Action"] == "CompleteLifecycleAction"]
        assert done == [{
            "Action": "CompleteLifecycleAction", "Version": "2011-01-01", "LifecycleHookName": "mq-terminate",
            "AutoScalingGroupName": moto.asg_name, "InstanceId": moto.instance_id, "LifecycleActionResult": "CONTINUE",
        }], "the group name was looked up with DescribeAutoScalingInstances"
        assert ("RecordLifecycleActionHeartbeat", "ok") in calls and ("CompleteLifecycleAction", "ok") in calls
    finally:
        proxy.stop()


def test_heartbeat_interval() -> None:
    assert heartbeat_interval(60) == 15 and heartbeat_interval(600) == 30 and heartbeat_interval(2) == 1


@pytest.mark.parametrize("end,begun,busy,prepared,job,ends", [
    (True, True, False, True, "finish_termination", False),   # termination already ended it
    (True, False, True, True, "cancel", True),                 # a start must not meet endmqm
    (True, False, False, True, "drain", True),
    (False, False, True, True, "drain", False),                # restart of mqguard: MQ stays
    (True, False, False, False, "drain", False),               # nothing prepared: nothing to end
])
def test_the_exit_plan_is_decided_purely(end: bool, begun: bool, busy: bool, prepared: bool, job: str,
                                         ends: bool) -> None:
    """Issue 18 item 2: the shutdown's cancel/drain/end policy was inline in Daemon.shutdown."""
    from mqguard.supervisor.stopping import exit_plan

    plan = exit_plan(end, "why", begun, busy, prepared, "QM1")
    assert (plan.job.value, plan.end_qmgr) == (job, ends)
    assert "QM1" in plan.say
