"""Issue 30 item 3: the Native HA stack, offline: the static checkers, the template's rules, a moto deployment read
back through the services' APIs, and deliberately broken copies that must each be caught by something."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest

from tests.deploy import kit, nhakit
from tests.peers.aws import MotoAsg

pytestmark = pytest.mark.skipif(kit.which_tools() is not None, reason=str(kit.which_tools()))


@pytest.fixture(scope="module")
def template() -> kit.Template:
    return kit.load_template(nhakit.TEMPLATE)


def deploy(moto: MotoAsg, template: kit.Template) -> nhakit.NhaDeployed:
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    return nhakit.NhaDeployed(moto.client, f"nha{uuid.uuid4().hex[:8]}", template, {
        "ImageId": ami, "VpcId": vpc, "PrivateRouteTableId": rtb, "ClientCidr": kit.CLIENT_CIDR,
        "SubnetCidrs": "10.0.101.0/24,10.0.102.0/24,10.0.103.0/24"})


def test_the_native_ha_template_passes_every_static_checker(template: kit.Template) -> None:
    assert kit.cfn_lint(nhakit.TEMPLATE) == []
    assert kit.checkov(nhakit.TEMPLATE) == []
    assert nhakit.static_problems(template) == []


def test_the_native_ha_stack_deploys_and_holds_what_mqguard_needs(moto: MotoAsg, template: kit.Template,
                                                                   tmp_path: Path) -> None:
    d = deploy(moto, template)
    assert d.problems(tmp_path) == []
    addresses = d.outputs["ReplicationAddresses"]
    print(f"\nFIGURE Native HA stack in moto: 3 groups in 3 AZs, 3 retained volumes, replication {addresses}")


def _res(t: kit.Template, name: str) -> Dict[str, Any]:
    return t["Resources"][name]  # type: ignore[no-any-return]


def _props(t: kit.Template, name: str) -> Dict[str, Any]:
    return _res(t, name)["Properties"]  # type: ignore[no-any-return]


BROKEN: Dict[str, Callable[[kit.Template], None]] = {
    "two groups in one AZ": lambda t: _props(t, "GroupB").update(VPCZoneIdentifier=[{"Ref": "SubnetA"}]),
    "a group over two AZs": lambda t: _props(t, "GroupC").update(
        VPCZoneIdentifier=[{"Ref": "SubnetC"}, {"Ref": "SubnetA"}]),
    "a volume in another AZ than its group": lambda t: _props(t, "VolumeB").update(
        AvailabilityZone={"Fn::Select": [2, {"Fn::GetAZs": ""}]}),
    "a volume deleted with the stack": lambda t: _res(t, "VolumeA").update(DeletionPolicy="Delete"),
    "an unencrypted volume": lambda t: _props(t, "VolumeC").update(Encrypted=False),
    "a replication interface in another subnet": lambda t: _props(t, "ReplicationInterfaceC").update(
        SubnetId={"Ref": "SubnetB"}),
    "replication open to the VPC": lambda t: _props(t, "ReplicationIn").pop("SourceSecurityGroupId") and
    _props(t, "ReplicationIn").update(CidrIp="10.0.0.0/16"),
    "replication on every port": lambda t: _props(t, "ReplicationIn").update(FromPort=0, ToPort=65535),
    "health check on /healthz": lambda t: _props(t, "TargetGroup").update(HealthCheckPath="/healthz"),
    "ELB health checks replace replicas": lambda t: _props(t, "GroupA").update(HealthCheckType="ELB"),
    "groups updated all at once": lambda t: _res(t, "GroupC").update(DependsOn=["SubnetCRoutes"]),
    "a group of two": lambda t: _props(t, "GroupB").update(MinSize="2", MaxSize="2", DesiredCapacity="2"),
    "instances tagged wrongly": lambda t: _props(t, "GroupC")["Tags"].__setitem__(
        1, {"Key": "mqguard-nha-instance", "Value": "b", "PropagateAtLaunch": True}),
    "stanzas with a wrong port": lambda t: _swap_user_data(t, "(${ReplicationPort}), c=", "(9415), c="),
    "attach allowed on any volume": lambda t: _policy(t, "reattach-own-volume-and-interface")[
        "PolicyDocument"]["Statement"][0].pop("Condition"),
    "a volume tagged for another instance": lambda t: _props(t, "VolumeB")["Tags"].__setitem__(
        1, {"Key": "mqguard:nha-instance", "Value": "a"}),
    "formatting without blkid": lambda t: _swap_user_data(t, 'blkid -p "$dev" >/dev/null 2>&1 || rc=$?',
                                                           "rc=2"),
}


def _policy(t: kit.Template, name: str) -> Dict[str, Any]:
    return next(p for p in _props(t, "InstanceRole")["Policies"] if p["PolicyName"] == name)  # type: ignore


def _swap_user_data(t: kit.Template, old: str, new: str) -> None:
    sub = _props(t, "LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert old in sub[0], old
    sub[0] = sub[0].replace(old, new)


def first_rejection(variant: kit.Template, moto: MotoAsg, tmp: Path) -> Tuple[str, list]:  # type: ignore[type-arg]
    problems = nhakit.static_problems(variant)
    if problems:
        return "template rules", problems
    path = kit.write_json(variant, tmp)
    problems = kit.cfn_lint(path)
    if problems:
        return "cfn-lint", problems
    try:
        d = deploy(moto, variant)
    except Exception as exc:  # moto refused the stack itself
        return "moto deployment", [str(exc)[:300]]
    problems = d.problems(tmp)
    return ("deployed resources", problems) if problems else ("", [])


def test_every_broken_native_ha_copy_is_rejected_and_we_say_by_what(moto: MotoAsg, template: kit.Template,
                                                                     tmp_path: Path) -> None:
    caught: Dict[str, str] = {}
    missed = []
    for i, (name, change) in enumerate(BROKEN.items()):
        d = tmp_path / f"v{i}"
        d.mkdir()
        check, problems = first_rejection(kit.mutate(template, change), moto, d)
        if check:
            caught[name] = f"{check}: {problems[0][:110]}"
        else:
            missed.append(name)
    print("\nbroken Native HA copies and the check that caught each:")
    for name, how in caught.items():
        print(f"  {name:42} <- {how}")
    assert missed == [], f"not rejected by any check: {missed}"


def test_no_active_instance_raises_an_alarm_that_needs_nothing_on_the_instances(template: kit.Template) -> None:
    """The load balancer's healthy host count (its /active health check) below 1 for 5 minutes: no elected
    active with its quorum, or no instance at all. Checked against CloudWatch's own PutMetricAlarm model."""
    import json

    import botocore.session
    from botocore.validate import validate_parameters

    from tests.deploy import network

    for params in ({}, {"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:mq-pager"}):
        res = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "VpcId": "vpc-0a1b2c3d",
                                          "PrivateRouteTableId": "rtb-0a1b2c3d", **params})
        props = res.value(template["Resources"]["NoActiveQueueManagerAlarm"]["Properties"])
        props = json.loads(json.dumps(props, default=lambda r: f"{r.logical}-{r.attribute}"))
        props["AlarmName"] = "stack-no-active-queue-manager"
        model = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm")
        validate_parameters(props, model.input_shape)
        assert (props["Namespace"], props["MetricName"]) == ("AWS/NetworkELB", "HealthyHostCount")
        assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1
        assert props["TreatMissingData"] == "breaching", "no data (no targets at all) is the outage itself"
        assert ("AlarmActions" in props) == bool(params), "the topic is used when one is given"
