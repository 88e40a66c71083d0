"""The warm pool's refresh after a stack update (issue 26, item 2): the function's code exactly as the
template inlines it, asked as CloudFormation asks (a custom-resource event), answering a real HTTP
server standing for the pre-signed response URL. Auto Scaling is botocore's Stubber (moto has no
instance refresh): it checks every request against the service's own model, so a preference AWS
would refuse (MaxHealthyPercentage below MinHealthyPercentage, a misspelt key) fails here too.
"""

from __future__ import annotations

import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import boto3
import pytest
from botocore.stub import Stubber

from tests.deploy import kit

SOURCE = kit.ROOT / "deploy" / "cloudformation" / "warm_pool_refresh.py"
GROUP = "stack-mq"
LT = "lt-0a1b2c3d4e5f60718"


class ResponseUrl:
    """CloudFormation's side: records each PUT of a custom resource's answer."""

    def __init__(self) -> None:
        self.answers: List[Dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.answers.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/response?X-Amz-Signature=x"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cfn() -> Iterator[ResponseUrl]:
    server = ResponseUrl()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def code() -> types.ModuleType:
    template = kit.load_template()
    inline = template["Resources"]["WarmPoolRefreshFunction"]["Properties"]["Code"]["ZipFile"]
    assert inline == SOURCE.read_text(), "the template inlines deploy/cloudformation/warm_pool_refresh.py as it is"
    module = types.ModuleType("index")
    exec(compile(inline, "index.py", "exec"), module.__dict__)  # noqa: S102 - the code Lambda would run
    return module


def event(cfn: ResponseUrl, kind: str, version: str, old_version: str = "") -> Dict[str, Any]:
    ev: Dict[str, Any] = {
        "RequestType": kind, "ResponseURL": cfn.url, "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/x",
        "RequestId": "r-1", "LogicalResourceId": "WarmPoolRefresh", "ResourceType": "Custom::WarmPoolRefresh",
        "ResourceProperties": {"ServiceToken": "arn:fn", "GroupName": GROUP, "LaunchTemplateId": LT,
                               "LaunchTemplateVersion": version}}
    if kind != "Create":
        ev["PhysicalResourceId"] = "warm-pool-refresh"
    if old_version:
        ev["OldResourceProperties"] = {**ev["ResourceProperties"], "LaunchTemplateVersion": old_version}
    return ev


def stubbed() -> Any:
    return boto3.client("autoscaling", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


START = {"AutoScalingGroupName": GROUP, "Strategy": "Rolling",
         "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "7"}},
         "Preferences": {"SkipMatching": True, "MinHealthyPercentage": 0, "MaxHealthyPercentage": 100,
                         "InstanceWarmup": 0}}


def test_an_update_to_a_new_launch_template_version_refreshes_the_group_skipping_matching_instances(
        code: types.ModuleType, cfn: ResponseUrl) -> None:
    asg = stubbed()
    with Stubber(asg) as stub:
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "ir-1"}, START)
        code.handler(event(cfn, "Update", "7", old_version="6"), None, asg=asg)
        stub.assert_no_pending_responses()
    assert [a["Status"] for a in cfn.answers] == ["SUCCESS"]
    assert "ir-1" in cfn.answers[0]["Reason"] and cfn.answers[0]["PhysicalResourceId"] == "warm-pool-refresh"


@pytest.mark.parametrize("kind", ["Create", "Delete", "Update"])
def test_nothing_is_refreshed_unless_the_launch_template_changed(code: types.ModuleType, cfn: ResponseUrl,
                                                                  kind: str) -> None:
    asg = stubbed()
    with Stubber(asg) as stub:  # no response queued: any call fails the test
        code.handler(event(cfn, kind, "7", old_version="7" if kind == "Update" else ""), None, asg=asg)
        stub.assert_no_pending_responses()
    assert [a["Status"] for a in cfn.answers] == ["SUCCESS"]
    assert cfn.answers[0]["Reason"] == "nothing to replace"


def test_an_older_refresh_in_progress_is_cancelled_and_the_newest_version_wins(
        code: types.ModuleType, cfn: ResponseUrl) -> None:
    """Two updates in a row, or this update's rollback: the refresh of the version CloudFormation wants now."""
    asg = stubbed()
    with Stubber(asg) as stub:
        stub.add_client_error("start_instance_refresh", "InstanceRefreshInProgress", "an instance refresh is "
                              "already in progress", 400, expected_params=START)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
            {"InstanceRefreshId": "ir-0", "AutoScalingGroupName": GROUP, "Status": "InProgress"}]},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 1})
        stub.add_response("cancel_instance_refresh", {"InstanceRefreshId": "ir-0"}, {"AutoScalingGroupName": GROUP})
        stub.add_client_error("start_instance_refresh", "InstanceRefreshInProgress", "still cancelling", 400,
                              expected_params=START)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
            {"InstanceRefreshId": "ir-0", "AutoScalingGroupName": GROUP, "Status": "Cancelling"}]},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 1})
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "ir-2"}, START)
        code.handler(event(cfn, "Update", "7", old_version="6"), None, asg=asg, pause=0.01)
        stub.assert_no_pending_responses()
    assert [a["Status"] for a in cfn.answers] == ["SUCCESS"] and "ir-2" in cfn.answers[0]["Reason"]


def test_a_refresh_that_cannot_start_fails_the_update_with_the_reason(code: types.ModuleType,
                                                                      cfn: ResponseUrl) -> None:
    asg = stubbed()
    with Stubber(asg) as stub:
        stub.add_client_error("start_instance_refresh", "AccessDenied", "not authorized to use launch template", 403,
                              expected_params=START)
        code.handler(event(cfn, "Update", "7", old_version="6"), None, asg=asg)
    assert [a["Status"] for a in cfn.answers] == ["FAILED"]
    assert "not authorized to use launch template" in cfn.answers[0]["Reason"]


def test_a_refresh_that_stays_in_progress_past_the_budget_fails_instead_of_hanging(
        code: types.ModuleType, cfn: ResponseUrl) -> None:
    asg = stubbed()
    with Stubber(asg) as stub:
        for _ in range(50):
            stub.add_client_error("start_instance_refresh", "InstanceRefreshInProgress", "in progress", 400)
            stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
                {"InstanceRefreshId": "ir-0", "AutoScalingGroupName": GROUP, "Status": "RollbackInProgress"}]})
        code.handler(event(cfn, "Update", "7", old_version="6"), None, asg=asg, budget=0.2, pause=0.05)
    assert [a["Status"] for a in cfn.answers] == ["FAILED"]
    assert "InstanceRefreshInProgress" in cfn.answers[0]["Reason"]
