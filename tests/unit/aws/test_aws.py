"""IMDSv2 against a real HTTP server; Auto Scaling against moto's server and a fault proxy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Tuple

import pytest

from mqguard.aws.autoscaling import AutoScaling, call_until_done
from mqguard.aws.cfn import StackSignal
from mqguard.aws.errors import NOT_YET, PERMANENT, THROTTLED, TRANSIENT, AwsErrors, classify, not_yet_delay
from mqguard.aws.imds import Imds, ImdsError, ImdsNotFound
from mqguard.base.retry import Backoff
from mqguard.config import ReportMode
from mqguard.supervisor.reporter import Reporter
from tests.conftest import ROOT
from tests.fakes import FakeClock
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.imds import ImdsServer


def test_imds_v2_token_flow(imds: ImdsServer) -> None:
    client = Imds(imds.url)
    assert client.instance_id() == "i-0123456789abcdef0"
    assert client.region() == "us-east-1"
    puts = [r for r in imds.requests if r.startswith("PUT")]
    assert puts == ["PUT /latest/api/token 200"], "token is fetched once and cached"
    assert all(" 401" not in r for r in imds.requests)


def test_imds_token_renewed_before_expiry(imds: ImdsServer) -> None:
    clock = FakeClock()
    client = Imds(imds.url, monotonic=clock.monotonic)
    client.instance_id()
    clock.advance(21600 - 601)
    client.instance_id()
    assert sum(r.startswith("PUT") for r in imds.requests) == 1
    clock.advance(2)
    client.instance_id()
    assert sum(r.startswith("PUT") for r in imds.requests) == 2


def test_imds_revoked_token_is_replaced(imds: ImdsServer) -> None:
    client = Imds(imds.url, sleep=lambda s: None)
    client.instance_id()
    imds.tokens.clear()  # e.g. IMDS restarted
    assert client.instance_id() == "i-0123456789abcdef0"
    assert any(r.endswith(" 401") for r in imds.requests)


def test_imds_retries_server_errors_and_reports_missing_paths(imds: ImdsServer) -> None:
    client = Imds(imds.url, sleep=lambda s: None)
    imds.fail_next = 2
    assert client.instance_id() == "i-0123456789abcdef0"
    with pytest.raises(ImdsNotFound):
        client.get("meta-data/spot/instance-action")
    imds.fail_next = 10
    with pytest.raises(ImdsError):
        client.instance_id()


def test_imds_unreachable_fails_fast() -> None:
    client = Imds("http://127.0.0.1:9", timeout=0.5, attempts=2, sleep=lambda s: None)
    with pytest.raises(ImdsError):
        client.instance_id()


def asg_for(moto: MotoAsg, imds: ImdsServer, url: str, calls: list) -> AutoScaling:  # type: ignore[type-arg]
    imds.paths["meta-data/instance-id"] = moto.instance_id
    return AutoScaling(Imds(imds.url), "us-east-1", url, observe=lambda op, res: calls.append((op, res)))


def test_set_unhealthy_flips_health_in_moto(moto: MotoAsg, imds: ImdsServer) -> None:
    calls: list = []  # type: ignore[type-arg]
    asg = asg_for(moto, imds, moto.url, calls)
    assert moto.health() == "Healthy"
    assert asg.set_unhealthy(respect_grace_period=True) == moto.instance_id
    assert moto.health() == "Unhealthy"
    assert calls == [("SetInstanceHealth", "ok")]
    assert asg.describe_instance()["AutoScalingGroupName"] == moto.asg_name  # type: ignore[index]


def test_throttling_and_5xx_are_retried_and_counted(moto: MotoAsg, imds: ImdsServer) -> None:
    # botocore makes one attempt per call (its retries are off): mqguard's loop retries,
    # asking again before each attempt. Every attempt is counted.
    proxy = FaultProxy(moto.url, ["throttle", "500", "reset"]).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        stop = threading.Event()
        result = call_until_done(
            "SetInstanceHealth", "SetInstanceHealth", lambda: asg.set_unhealthy(True), stop,
            Backoff(base=0.01, cap=0.05)
        )
        assert result == moto.instance_id
        assert moto.health() == "Unhealthy"
        assert calls == [
            ("SetInstanceHealth", "throttled"),
            ("SetInstanceHealth", "error"),
            ("SetInstanceHealth", "error"),
            ("SetInstanceHealth", "ok"),
        ]
        assert [s for _, s in proxy.seen].count("pass") == 1
    finally:
        proxy.stop()


def test_call_until_done_stops_when_asked() -> None:
    stop = threading.Event()
    attempts = []

    def failing() -> None:
        attempts.append(1)
        if len(attempts) == 3:
            stop.set()
        raise ConnectionError("unreachable")

    assert call_until_done("x", "X", failing, stop, Backoff(base=0.001, cap=0.001)) is None
    assert len(attempts) == 3


def coded(code: str, status: int = 400) -> Exception:
    class E(Exception):
        response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    return E(code)


def test_error_classes() -> None:
    assert classify(coded("Throttling")).kind == THROTTLED
    assert classify(coded("InternalFailure", 500)).kind == TRANSIENT
    assert classify(ConnectionError()).kind == TRANSIENT
    denied = classify(coded("AccessDenied", 403))
    assert denied.kind == PERMANENT and denied.access
    assert classify(coded("UnauthorizedOperation", 403)).access
    assert classify(coded("ValidationError")).kind == PERMANENT and not classify(coded("ValidationError")).access


class CountingStop(threading.Event):
    """A stop event that records each wait instead of sleeping, and stops after ``n`` waits."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.waits: list = []  # type: ignore[type-arg]

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.n:
            self.set()
        return self.is_set()


def report_until(asg: AutoScaling, waits: int, errors: AwsErrors) -> Tuple[object, CountingStop]:
    """SetInstanceHealth(Unhealthy) through call_until_done, stopped after ``waits`` waits (recorded, not slept)."""
    stop = CountingStop(waits)
    result = call_until_done("SetInstanceHealth(Unhealthy)", "SetInstanceHealth", lambda: asg.set_unhealthy(True),
                             stop, Backoff(base=0.01, cap=0.05), errors=errors)
    return result, stop


def test_access_denied_is_never_retried_in_a_tight_loop(moto: MotoAsg, imds: ImdsServer,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """AccessDenied was retried 80 times in 0.5 s; now: at most every 30 s, logged with the IAM action."""
    proxy = FaultProxy(moto.url, ["denied"] * 3).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        errors = AwsErrors()
        with caplog.at_level(logging.ERROR):
            result, stop = report_until(asg, 3, errors)
        assert result is None
        assert [a for a, _ in proxy.seen] == ["SetInstanceHealth"] * 3  # botocore does not retry a 403 either
        assert all(w >= 30 for w in stop.waits), stop.waits
        assert calls == [("SetInstanceHealth", "error")] * 3
        errs = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errs) == 1, "one ERROR line per distinct error, not one per attempt"
        assert "AccessDenied" in errs[0] and "autoscaling:SetInstanceHealth" in errs[0]
        current = errors.current()
        assert current is not None and current["operation"] == "SetInstanceHealth" and current["code"] == "AccessDenied"
        # IAM fixed: the next attempt works and the error is gone
        assert call_until_done("x", "SetInstanceHealth", lambda: asg.set_unhealthy(True), threading.Event(),
                               errors=errors) == moto.instance_id
        assert errors.current() is None
    finally:
        proxy.stop()


def test_a_report_inside_the_groups_grace_period_is_not_yet_not_a_permission_problem(
        moto: MotoAsg, imds: ImdsServer, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 17 item 4: AWS refuses SetInstanceHealth with ValidationError while the instance is younger than
    the group's grace period. That is "not yet": retried when the period ends (no sooner than the contract's
    30 s floor), logged once at WARNING, not shown as aws_error, no IAM hint; the report goes out then."""
    assert classify(coded("ValidationError")).kind == PERMANENT
    grace = classify(Exception.__new__(type("E", (Exception,), {"response": {"Error": {
        "Code": "ValidationError", "Message": "The age of the instance (286 seconds) is less than the configured "
        "grace period of 300 seconds"}, "ResponseMetadata": {"HTTPStatusCode": 400}}})))
    assert grace.kind == NOT_YET and not grace.access
    assert not_yet_delay(grace.message) == 15.0
    assert not_yet_delay("less than the configured grace period of 99999 seconds") == 300.0
    assert not_yet_delay("garbled") is None
    assert not_yet_delay("The age of the instance (10 seconds) is less than the configured grace period of "
                         "200 seconds") == 191.0
    proxy = FaultProxy(moto.url, ["grace", "grace"]).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        errors = AwsErrors()
        with caplog.at_level(logging.INFO):
            result, stop = report_until(asg, 5, errors)
        assert result == moto.instance_id and moto.health() == "Unhealthy"
        assert stop.waits == [30.0, 30.0], "no sooner than the contract's 30 s floor for a ValidationError"
        assert errors.current() is None, "not a permanent error for /status"
        text = [r.getMessage() for r in caplog.records]
        assert not [m for m in text if "IAM action" in m]
        assert len([m for m in text if "grace period" in m and "HealthCheckGracePeriod" in m]) == 1
    finally:
        proxy.stop()


def test_a_report_for_an_episode_that_ended_is_not_sent(moto: MotoAsg, imds: ImdsServer) -> None:
    """The API was down while MQ recovered: when it comes back, the old report must not go out."""
    proxy = FaultProxy(moto.url, ["reset"] * 4).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        reporter = Reporter(ReportMode.AUTOSCALING, asg, True, threading.Event(), backoff=Backoff(base=0.2, cap=0.3))
        episode_bad = threading.Event()
        episode_bad.set()
        reporter.report("test", episode_bad.is_set)
        wait_for(lambda: len(proxy.seen) >= 2)
        episode_bad.clear()  # the queue manager recovered
        reporter.join(15)
        assert not reporter.reported
        assert moto.health() == "Healthy"
        assert not [a for a, step in proxy.seen if a == "SetInstanceHealth" and step == "pass"]
    finally:
        proxy.stop()


def test_the_episode_is_asked_again_before_every_http_attempt(moto: MotoAsg, imds: ImdsServer) -> None:
    """Issue 16 item 4: botocore retried inside one mqguard attempt, so a report reached AWS seconds after the
    queue manager ran again. Now mqguard owns every retry and asks "still bad?" before each HTTP attempt."""
    proxy = FaultProxy(moto.url, ["500"]).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        reporter = Reporter(ReportMode.AUTOSCALING, asg, True, threading.Event(), backoff=Backoff(base=0.2, cap=0.3))
        answers = [True]  # bad when the first attempt goes out; recovered right after it
        reporter.report("test", lambda: answers.pop(0) if answers else False)
        reporter.join(15)
        assert [step for action, step in proxy.seen if action == "SetInstanceHealth"] == ["500"], proxy.seen
        assert not reporter.reported and moto.health() == "Healthy"
    finally:
        proxy.stop()


def test_report_log_mode_makes_no_aws_call(moto: MotoAsg, imds: ImdsServer) -> None:
    proxy = FaultProxy(moto.url, []).start()
    try:
        calls: list = []  # type: ignore[type-arg]
        asg = asg_for(moto, imds, proxy.url, calls)
        reporter = Reporter(ReportMode.LOG, asg, True, threading.Event())
        reporter.report("test")
        reporter.join(2)
        assert proxy.seen == [] and calls == [] and imds.requests == []
        assert reporter.dry_runs == 1 and not reporter.reported
        assert moto.health() == "Healthy"
    finally:
        proxy.stop()


def test_reporter_reports_once_in_background(moto: MotoAsg, imds: ImdsServer) -> None:
    calls: list = []  # type: ignore[type-arg]
    asg = asg_for(moto, imds, moto.url, calls)
    done = threading.Event()
    reporter = Reporter(ReportMode.AUTOSCALING, asg, False, threading.Event(), on_reported=done.set)
    reporter.report("test")
    assert done.wait(15)
    assert reporter.reported and moto.health() == "Unhealthy"


def wait_for(pred, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.02)


def test_preflight_confirms_the_group_without_reporting(moto: MotoAsg, imds: ImdsServer) -> None:
    calls: list = []  # type: ignore[type-arg]
    asg = asg_for(moto, imds, moto.url, calls)
    reporter = Reporter(ReportMode.AUTOSCALING, asg, True, threading.Event())
    reporter.preflight()
    wait_for(lambda: reporter.preflight_result)
    assert reporter.preflight_result == "ok"
    assert calls == [("DescribeAutoScalingInstances", "ok")]
    assert moto.health() == "Healthy" and not reporter.reported


def test_preflight_warns_when_the_instance_is_in_no_group(moto: MotoAsg, imds: ImdsServer) -> None:
    asg = asg_for(moto, imds, moto.url, [])
    imds.paths["meta-data/instance-id"] = "i-00000000000000000"
    reporter = Reporter(ReportMode.AUTOSCALING, asg, True, threading.Event())
    reporter.preflight()
    wait_for(lambda: reporter.preflight_result)
    assert reporter.preflight_result == "not in an Auto Scaling group"


def test_preflight_reports_unreachable_metadata_without_blocking() -> None:
    asg = AutoScaling(Imds("http://127.0.0.1:9", timeout=0.2, sleep=lambda s: None), "us-east-1", "http://127.0.0.1:9")
    reporter = Reporter(ReportMode.AUTOSCALING, asg, True, threading.Event(), backoff=Backoff(0.01, 0.01))
    reporter.preflight()
    wait_for(lambda: reporter.preflight_result, timeout=60)
    assert reporter.preflight_result.startswith("error:") and "instance metadata" in reporter.preflight_result


def test_imds_answers_are_validated(imds: ImdsServer) -> None:
    client = Imds(imds.url, sleep=lambda s: None)
    imds.paths["meta-data/instance-id"] = "i-" + "0" * 4000
    with pytest.raises(ImdsError, match="invalid instance id"):
        client.instance_id()
    imds.paths["meta-data/instance-id"] = "i-0123456789abcdef0\nX-Injected: 1"
    with pytest.raises(ImdsError, match="invalid instance id"):
        client.instance_id()
    imds.paths["meta-data/placement/region"] = "us-east-1; rm -rf /"
    with pytest.raises(ImdsError, match="invalid region"):
        client.region()
    imds.paths["meta-data/instance-id"] = "x" * 100_000
    with pytest.raises(ImdsError, match="larger than"):
        client.get("meta-data/instance-id")


def test_imds_dripping_answer_is_cut_at_the_whole_request_deadline(imds: ImdsServer) -> None:
    # one byte every 0.3 s: each read is quick, the whole answer is not
    client = Imds(imds.url, timeout=1.0, attempts=3, sleep=lambda s: None)
    client.get("meta-data/instance-id")  # token first, at full speed
    imds.drip = 0.3
    start = time.monotonic()
    with pytest.raises(ImdsError):
        client.get("meta-data/instance-id", within=1.5)
    assert time.monotonic() - start < 10  # the whole-request deadline; the drip itself would take a minute


def test_boto_credential_chain_never_falls_back_to_imdsv1(imds: ImdsServer, tmp_path: Path) -> None:
    """With the token PUT refused, botocore's instance-role provider must not GET without a token."""
    imds.refuse_token = True
    script = (
        "import sys; from mqguard.aws.autoscaling import make_client; from mqguard.aws.imds import Imds\n"
        "try:\n    make_client('us-east-1', 'http://127.0.0.1:9', Imds(sys.argv[1])).describe_auto_scaling_instances()\n"
        "except Exception as e:\n    print(type(e).__name__)\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    res = subprocess.run([sys.executable, "-c", script, imds.url], env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() in ("NoCredentialsError", "MetadataRetrievalError"), res.stdout + res.stderr
    assert any(r.startswith("PUT /latest/api/token 403") for r in imds.requests), imds.requests
    assert not [r for r in imds.requests if r.startswith("GET")], imds.requests


def test_the_iam_policy_example_allows_exactly_the_calls_mqguard_makes() -> None:
    import json as jsonlib

    from mqguard.aws.autoscaling import OPERATIONS
    from mqguard.aws.errors import iam_action

    policy = jsonlib.loads((ROOT / "examples" / "iam-policy.json").read_text())
    allowed = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        allowed |= set([actions] if isinstance(actions, str) else actions)
    assert allowed == {iam_action(op) for op in OPERATIONS}


def _credentials_probe(imds_url: str, moto_url: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """In a fresh process without static credentials: one Auto Scaling call, then RSS and the time it took."""
    script = (
        "import sys, time; from mqguard.aws.autoscaling import make_client; from mqguard.aws.imds import Imds\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    make_client('us-east-1', sys.argv[2], Imds(sys.argv[1])).describe_auto_scaling_instances()\n"
        "    print('ok', end=' ')\n"
        "except Exception as e:\n    print(type(e).__name__, end=' ')\n"
        "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(round(time.monotonic() - t, 1), hwm // 1024)\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    return subprocess.run([sys.executable, "-c", script, imds_url, moto_url], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_instance_role_credentials_come_through_mqguards_bounded_imds_client(imds: ImdsServer, moto: MotoAsg,
                                                                            tmp_path: Path) -> None:
    """Issue 16 item 9: botocore's own IMDS fetch read a 300 MB answer whole (RSS 28 -> 673 MiB) and a dripping
    one stalled the report for ever; the role's credentials now come through mqguard's IMDSv2 client."""
    role = "mq-instance-role"
    imds.paths["meta-data/iam/security-credentials/"] = role
    creds = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAEXAMPLEEXAMPLE12",
             "SecretAccessKey": "x" * 40, "Token": "t" * 900, "Expiration": "2099-01-01T00:00:00Z"}
    imds.paths[f"meta-data/iam/security-credentials/{role}"] = json.dumps(creds)
    res = _credentials_probe(imds.url, moto.url, tmp_path)
    assert res.stdout.startswith("ok "), res.stdout + res.stderr
    assert f"GET /latest/meta-data/iam/security-credentials/{role} 200" in imds.requests
    imds.paths[f"meta-data/iam/security-credentials/{role}"] = json.dumps({**creds, "Token": "t" * 50_000_000})
    res = _credentials_probe(imds.url, moto.url, tmp_path)
    outcome, took, rss_mib = res.stdout.split()
    assert outcome != "ok" and float(rss_mib) < 120, res.stdout + res.stderr  # refused, never read whole
    imds.paths[f"meta-data/iam/security-credentials/{role}"] = json.dumps(creds)
    imds.drip = 0.5
    res = _credentials_probe(imds.url, moto.url, tmp_path)
    outcome, took, _ = res.stdout.split()
    assert outcome != "ok" and float(took) < 30, res.stdout + res.stderr  # bounded, not a stall


def test_the_reports_own_event_is_on_the_storage_before_the_report_counts_as_done(
        moto: MotoAsg, imds: ImdsServer, tmp_path: Path) -> None:
    """Security round 3 HIGH 3: the `reported` event was queued by the loop later, behind a history read on the
    writer's thread; an instance killed right after reporting lost it in 2 of 4 tries from outside."""
    import time

    from mqguard.history.reader import read_history
    from mqguard.history.writer import HistoryWriter

    owners = frozenset({os.getuid()})
    writer = HistoryWriter(str(tmp_path), owners, time.time, lambda n: None, lambda: None, host="hostA")
    calls: list = []  # type: ignore[type-arg]
    asg = asg_for(moto, imds, moto.url, calls)
    seen_at_done: list = []  # type: ignore[type-arg]

    def done() -> None:  # what the reporter tells the loop: by then the event must be on the storage
        seen_at_done.extend(e.event for e in read_history(str(tmp_path), owners, time.time()).events)

    reporter = Reporter(ReportMode.AUTOSCALING, asg, False, threading.Event(), on_reported=done,
                        record=writer.record, flush=writer.flush)
    reporter.report("test")
    wait_for(lambda: reporter.reported)
    assert reporter.reported and seen_at_done == ["reported"]


def test_credentials_missing_when_the_client_is_first_built_are_fetched_again(
        imds: ImdsServer, moto: MotoAsg, tmp_path: Path) -> None:
    """Security round 3 MEDIUM 6: when the role's credentials were missing at the first client (IMDS answered 404
    for a while at boot), the client stayed unsigned for the life of the process and no report was ever sent."""
    role = "mq-instance-role"
    imds.paths["meta-data/instance-id"] = moto.instance_id
    imds.paths["meta-data/iam/security-credentials/"] = role  # listed, but not there yet: 404
    creds = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAEXAMPLEEXAMPLE12",
             "SecretAccessKey": "x" * 40, "Token": "t" * 900, "Expiration": "2099-01-01T00:00:00Z"}
    script = (
        "import sys, threading, time\n"
        "from mqguard.aws.autoscaling import AutoScaling, call_until_done\n"
        "from mqguard.aws.imds import Imds\n"
        "from mqguard.base.retry import Backoff\n"
        "asg = AutoScaling(Imds(sys.argv[1]), 'us-east-1', sys.argv[2])\n"
        "got = call_until_done('SetInstanceHealth', 'SetInstanceHealth', lambda: asg.set_unhealthy(False),\n"
        "                      threading.Event(), Backoff(base=0.2, cap=0.5), floor=0.3)\n"
        "print('reported', got)\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    proc = subprocess.Popen([sys.executable, "-c", script, imds.url, moto.url], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the first attempts meet no credentials
        assert proc.poll() is None, proc.communicate()
        imds.paths[f"meta-data/iam/security-credentials/{role}"] = json.dumps(creds)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.startswith("reported "), out + err[-2000:]
    assert moto.health() == "Unhealthy"


def _signal_for(moto: MotoAsg, imds: ImdsServer, proxy: FaultProxy) -> StackSignal:
    imds.paths["meta-data/instance-id"] = moto.instance_id
    asg = AutoScaling(Imds(imds.url), "us-east-1", proxy.url)
    return StackSignal(asg, "mqstack", "Group", threading.Event(), backoff=Backoff(base=0.01, cap=0.05))


def test_a_signal_nobody_waits_for_is_said_once_at_info_not_as_an_error(
        moto: MotoAsg, imds: ImdsServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every replacement outside a stack update (a failover) signals too, and CloudFormation answers "is in
    UPDATE_COMPLETE state and cannot be signaled": normal, so it must not page anyone as an ERROR."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    proxy = FaultProxy(moto.url, []).start()
    proxy.stack_state = "UPDATE_COMPLETE"
    try:
        with caplog.at_level(logging.INFO, logger="mqguard.aws.cfn"):
            signal = _signal_for(moto, imds, proxy)
            signal.send(True, "queue manager healthy for the first time")
            signal.send(True, "again")  # once per process
            deadline = time.monotonic() + 10
            while not [r for r in caplog.records if r.name == "mqguard.aws.cfn"] and time.monotonic() < deadline:
                time.sleep(0.02)
        records = [r for r in caplog.records if r.name == "mqguard.aws.cfn"]
        assert len(proxy.signals) == 1, "a refusal is an answer: never asked again"
        assert [r.levelno for r in records] == [logging.INFO], [r.getMessage() for r in records]
        assert "not waiting" in records[0].getMessage() and "UPDATE_COMPLETE" in records[0].getMessage()
        # ... while a failure that is not CloudFormation's answer still is an error
        caplog.clear()
        proxy.stack_state = ""
        proxy.script = ["denied"]
        with caplog.at_level(logging.INFO, logger="mqguard.aws.cfn"):
            _signal_for(moto, imds, proxy).send(True, "healthy")
            deadline = time.monotonic() + 10
            while not [r for r in caplog.records if r.name == "mqguard.aws.cfn"] and time.monotonic() < deadline:
                time.sleep(0.02)
        assert [r.levelno for r in caplog.records if r.name == "mqguard.aws.cfn"] == [logging.ERROR]
    finally:
        proxy.stop()


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "cn-northwest-1", "us-iso-east-1",
                                    "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "ap-southeast-7",
                                    "mx-central-1"])
def test_every_partitions_region_names_are_valid(imds: ImdsServer, region: str) -> None:
    """Issue 26 (low): region names of the newer partitions (ISO, ISO-B, ISO-E, ISO-F, GovCloud, China)."""
    imds.paths["meta-data/placement/region"] = region
    assert Imds(imds.url).region() == region


@pytest.mark.parametrize("bad", ["us-east", "US-EAST-1", "us-east-1 x", "../x", "us_east_1"])
def test_a_region_that_is_no_region_name_is_refused(imds: ImdsServer, bad: str) -> None:
    imds.paths["meta-data/placement/region"] = bad
    with pytest.raises(ImdsError):
        Imds(imds.url).region()
