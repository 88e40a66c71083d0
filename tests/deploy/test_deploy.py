"""The deployment kit (deploy/), offline: static checks, moto deployments read back
through the services' APIs, the IAM proof, the rendered user data, mqguard against
the deployed group end to end, and deliberately broken copies that must be caught.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from tests.conftest import ROOT, Harness, free_port, wait_until
from tests.deploy import kit, network, stackcheck, updatecheck
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.efs import FakeEfs
from tests.peers.imds import ImdsServer

pytestmark = pytest.mark.skipif(kit.which_tools() is not None, reason=str(kit.which_tools()))

PARAMETER_SETS: Dict[str, Dict[str, str]] = {
    "single-2az-tls": {},
    "multi-3az-nfs-kms": {"Mode": "multi-instance", "AvailabilityZoneCount": "3", "EfsMount": "nfs4.1",
                          "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666",
                          "StopTimeout": "120", "StartTimeout": "600"},
    "single-warm-pool": {"WarmPool": "true", "ClientCidr": "172.16.0.0/12", "GracePeriod": "1m30s",
                         "RestartAttempts": "5", "LockWait": "90s", "MqscParameterName": "/mq-prod/QM1/mqsc"},
    "existing-vpc-rhel9": {"ExistingVpcId": "(made by the test)", "ImageBase": "rhel9",
                           "MonitoringSecurityGroupId": "(made by the test)", "MqPeerCidr": "10.60.0.0/16",
                           "MqPeerPorts": "1414-1415", "LdapCidr": "10.61.0.0/24"},
}
# the network as the template resolves it, in both VPC modes and with every optional flow
NETWORK_SETS: Dict[str, Dict[str, str]] = {
    "new VPC": {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR},
    "existing VPC": {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "ExistingVpcId": "vpc-0a1b2c3d",
                     "ExistingSubnetIds": "subnet-0a1b2c3d,subnet-1a1b2c3d",
                     "MonitoringSecurityGroupId": "sg-0a1b2c3d", "MqPeerCidr": "10.60.0.0/16",
                     "MqPeerPorts": "1414-1415", "LdapCidr": "10.61.0.0/24"},
    "multi 3 AZ": {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "Mode": "multi-instance",
                   "AvailabilityZoneCount": "3"},
    # issue 26 item 5: three subnets given, two AZs used - the group and the load balancer the same two
    "existing VPC, 3 subnets, 2 AZs": {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "ExistingVpcId": "vpc-0a1b2c3d",
                                       "ExistingSubnetIds": "subnet-0a1b2c3d,subnet-1a1b2c3d,subnet-2a1b2c3d"},
    "CloudWatch agent, warm pool": {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "CloudWatchAgent": "true",
                                    "WarmPool": "true"},
}


def existing_network(moto: MotoAsg) -> Dict[str, str]:
    """A VPC with two private subnets in distinct AZs, and a Prometheus's security group in it,
    as a team's existing network."""
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24", AvailabilityZone=f"us-east-1{az}")[
        "Subnet"]["SubnetId"] for i, az in enumerate("ab")]
    prometheus = ec2.create_security_group(GroupName=f"prometheus-{uuid.uuid4().hex[:6]}", Description="scrapers",
                                           VpcId=vpc)["GroupId"]
    return {"ExistingVpcId": vpc, "ExistingSubnetIds": ",".join(subnets), "MonitoringSecurityGroupId": prometheus}


@pytest.fixture(scope="module")
def template() -> kit.Template:
    return kit.load_template()


def deploy(moto: MotoAsg, template: kit.Template, params: Dict[str, str]) -> kit.Deployed:
    ami = moto.client("ec2").describe_images()["Images"][0]["ImageId"]
    name = f"mq{uuid.uuid4().hex[:8]}"
    return kit.Deployed(moto.client, name, template, {"ImageId": ami, **params})


# ------------------------------------------------------------------ 1. static

def test_static_checks_are_clean(template: kit.Template, tmp_path: Path) -> None:
    assert kit.cfn_lint(kit.TEMPLATE) == []
    began = time.monotonic()
    assert kit.checkov(kit.TEMPLATE) == []
    print(f"\nFIGURE checkov on the template: {time.monotonic() - began:.1f} s, 0 failed")
    assert kit.cfn_guard(kit.TEMPLATE) == []
    assert kit.mount_target_problems(template) == []
    skips = [s["id"] for r in template["Resources"].values()
             for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    comments = [s.get("comment", "") for r in template["Resources"].values()
                for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips and all(len(c) > 20 for c in comments), "every checkov skip is justified in the template"


@pytest.mark.parametrize("mode", list(NETWORK_SETS))
def test_every_flow_is_open_both_ways_and_nothing_bypasses_the_load_balancer(template: kit.Template,
                                                                             mode: str) -> None:
    net = network.Network(template, NETWORK_SETS[mode])
    assert net.at["lb"] and net.at["instance"] and net.at["efs"]
    assert net.problems() == []
    # the model can fail: without the load balancer's egress rule, the health checks cannot leave it
    broken = kit.mutate(template, lambda t: t["Resources"].pop("LoadBalancerToInstancesHealth"))
    assert any("lb -> instance on 9157: no egress" in x for x in network.Network(broken, NETWORK_SETS[mode]).problems())


def test_a_wrong_pairing_of_the_existing_network_fails_before_anything_is_made(template: kit.Template) -> None:
    """Issue 26 item 5: ExistingVpcId without subnets failed obscurely half-way through; subnets without it were
    silently ignored (a new VPC was made). The template's Rules refuse both up front, naming what is wrong."""
    for params in NETWORK_SETS.values():
        assert network.rule_problems(template, params) == []
    base = {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR}
    assert any("give ExistingSubnetIds" in p for p in network.rule_problems(
        template, {**base, "ExistingVpcId": "vpc-0a1b2c3d"}))
    assert any("used only with ExistingVpcId" in p for p in network.rule_problems(
        template, {**base, "ExistingSubnetIds": "subnet-0a1b2c3d,subnet-1a1b2c3d"}))


def test_group_waits_for_every_mount_target_reports_without_grace_and_rolls_one_at_a_time(
        template: kit.Template) -> None:
    assert network.template_problems(template) == []
    assert network.depends_on(template, "Group", "MountTargetC")
    assert set(network.ROOT_DEVICE) == {"al2023", "rhel9"}
    hcl = (ROOT / "deploy" / "ami" / "mqguard.pkr.hcl").read_text()
    assert 'contains(["al2023", "rhel9"], var.base)' in hcl, "the AMI recipe's bases are the ones checked"


def test_hook_timeouts_are_mqguards_timeouts_plus_the_documented_margins(template: kit.Template) -> None:
    maps = template["Mappings"]
    for stop, row in maps["TerminationHook"].items():
        assert row["Seconds"] == int(stop) + 2 * 30 + 60
    for mount, row in maps["LaunchHook"].items():
        for start, seconds in row.items():
            assert seconds == int(mount) + int(start) + 120
    params = template["Parameters"]
    assert params["StopTimeout"]["AllowedValues"] == list(maps["TerminationHook"])
    assert params["MountTimeout"]["AllowedValues"] == list(maps["LaunchHook"])


def test_no_parameter_can_replace_the_data_unless_the_shipped_stack_policy_denies_it(template: kit.Template) -> None:
    """Issue 26 item 1: KmsKeyArn, MqmUid/MqmGid and EfsMount reach create-only properties (or the existence) of
    the file system and the access point; a stack update replaced them and the queue manager came back empty."""
    policy = updatecheck.load_policy()
    assert updatecheck.create_only("AWS::EFS::FileSystem") and updatecheck.create_only("AWS::EFS::AccessPoint")
    assert updatecheck.stack_policy_problems(template, policy) == []
    # the check can fail: without the policy every such parameter is named
    unguarded = " ".join(updatecheck.stack_policy_problems(template, {"Statement": []}))
    for param in ("KmsKeyArn", "MqmUid", "MqmGid", "EfsMount"):
        assert param in unguarded, param
    # ... and a policy that forgets the access point is caught
    partial = json.loads(json.dumps(policy).replace('"LogicalResourceId/AccessPoint"', '"LogicalResourceId/Other"'))
    assert any(p.startswith("AccessPoint") for p in updatecheck.stack_policy_problems(template, partial))
    # the policy is a valid stack policy document: what `aws cloudformation set-stack-policy` takes
    assert {st["Effect"] for st in policy["Statement"]} == {"Allow", "Deny"}
    assert all(a.startswith("Update:") for st in policy["Statement"] for a in
               (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]))


def test_an_update_replaces_every_instance_and_waits_for_each_to_run_mq(template: kit.Template) -> None:
    """Issue 26 items 2, 7 and 8: the warm pool is refreshed after an update; the update and the first create wait
    for mqguard's signal as long as the launch hook; a failed AZ launch goes to another AZ; zonal shift."""
    assert updatecheck.warm_pool_problems(template) == []
    assert updatecheck.signal_problems(template) == []
    refresh = template["Resources"]["WarmPoolRefresh"]
    assert refresh["Condition"] == template["Resources"]["WarmPoolResource"]["Condition"]


def test_every_shipped_cloudwatch_agent_configuration_can_do_its_work(template: kit.Template) -> None:
    """Issue 26 item 6: the agent runs as cwagent, which the IMDS firewall refused; a new VPC had no logs and
    monitoring endpoints; the role had no CloudWatch action."""
    assert updatecheck.AGENT_CONFIGS, "the check reads the shipped agent configurations"
    assert updatecheck.agent_problems(template) == []
    refused = updatecheck.agent_problems(template, hcl_text=(ROOT / "deploy" / "ami" / "mqguard.pkr.hcl").read_text()
                                         .replace('"cwagent" : ""', '"" : ""'))
    assert any("firewall refuses" in p for p in refused)


def test_the_no_active_queue_manager_alarm_is_a_valid_put_metric_alarm(template: kit.Template) -> None:
    """Issue 26 item 6: an outside signal that needs nothing on the instances (moto does not deploy alarms: the
    resolved properties are checked against CloudWatch's own PutMetricAlarm model)."""
    import botocore.session
    from botocore.validate import validate_parameters

    for params in ({}, {"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:mq-pager"}):
        res = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, **params})
        props = res.value(template["Resources"]["NoActiveQueueManagerAlarm"]["Properties"])
        props = json.loads(json.dumps(props, default=lambda r: f"{r.logical}-{r.attribute}"))
        props["AlarmName"] = "stack-no-active-queue-manager"
        model = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm")
        validate_parameters(props, model.input_shape)
        assert props["Namespace"] == "AWS/NetworkELB" and props["MetricName"] == "HealthyHostCount"
        assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1
        assert props["TreatMissingData"] == "breaching", "no data (no targets at all) is the outage itself"
        assert props["Period"] * props["EvaluationPeriods"] >= 300, "longer than a takeover or a local restart"
        assert {d["Name"] for d in props["Dimensions"]} == {"LoadBalancer", "TargetGroup"}
        assert ("AlarmActions" in props) == bool(params), "the topic is used when one is given"


def test_the_stacks_policy_is_examples_iam_policy_json(template: kit.Template) -> None:
    policy = next(p for p in template["Resources"]["InstanceRole"]["Properties"]["Policies"]
                  if p["PolicyName"] == "mqguard")["PolicyDocument"]
    own = "GROUP_ARN"
    rendered = json.loads(json.dumps(policy).replace(json.dumps(policy["Statement"][0]["Resource"]), f'"{own}"'))
    assert rendered == kit.example_policy_rendered(own)
    sub = policy["Statement"][0]["Resource"]["Fn::Sub"]
    assert sub.endswith(":autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}-mq")
    assert template["Resources"]["Group"]["Properties"]["AutoScalingGroupName"]["Fn::Sub"] == "${AWS::StackName}-mq"


def test_ami_recipe_validates_and_keeps_imdsv2(tmp_path: Path) -> None:
    import hcl2

    ami = ROOT / "deploy" / "ami"
    doc: Any = _unquote(hcl2.loads((ami / "mqguard.pkr.hcl").read_text()))
    source = doc["source"][0]["amazon-ebs"]["mq"]
    md = source["metadata_options"][0] if isinstance(source["metadata_options"], list) else source["metadata_options"]
    assert md["http_tokens"] == "required" and int(md["http_put_response_hop_limit"]) == 1
    assert source["encrypt_boot"] is True
    variables = {k: v for d in doc["variable"] for k, v in d.items()}
    assert variables["mq_accept_license"]["default"] is False, "IBM's license is accepted only on purpose"
    scripts = [Path(str(s).replace("${path.root}", str(ami))) for s in
               next(p["shell"] for p in doc["build"][0]["provisioner"] if "shell" in p)["scripts"]]
    for script in scripts:
        assert script.exists() and subprocess.run(["sh", "-n", str(script)]).returncode == 0
    by_name = {s.name: s.read_text() for s in scripts}
    install = by_name["30-install-mqguard.sh"]
    # issue 17: not enabled in the image - started by user data once its configuration and mount are there
    assert "systemctl enable" not in install and "systemctl disable mqguard.service" in install
    packages = by_name["10-packages.sh"]
    rhel = packages.split("else", 1)[1]
    assert "amazon-ssm-agent.rpm" in rhel, "RHEL has no SSM agent of its own and the stack opens no SSH"
    assert "systemctl enable amazon-ssm-agent\n" in packages and "amazon-ssm-agent 2>/dev/null || true" not in packages
    assert source["launch_block_device_mappings"][0]["device_name"] == "${local.root_device[var.base]}"
    roots = {k: v for d in doc["locals"] for k, v in d.items()}["root_device"]
    assert roots == network.ROOT_DEVICE, "the AMI's and the stack's root devices are the same"
    assert doc["build"][0]["post-processor"][0]["manifest"]["output"] == "build/ami-manifest.json"
    # issue 15 items 11 and 12: mqm's ids pinned before MQ's installer runs; kernel values only raised
    names = [s.name for s in scripts]
    assert names.index("15-mqm-user.sh") < names.index("20-install-mq.sh")
    assert int(variables["mqm_uid"]["default"]) < 1000 and int(variables["mqm_gid"]["default"]) < 1000
    assert '--uid "$MQM_UID"' in by_name["15-mqm-user.sh"] and '--gid "$MQM_GID"' in by_name["15-mqm-user.sh"]
    kernel = by_name["40-mq-kernel-and-limits.sh"]
    assert "mqguard preflight --write-sysctl /etc/sysctl.d/30-ibmmq.conf" in kernel
    assert "kernel.shmall =" not in kernel and "kernel.sem =" not in kernel, "no fixed values that could lower"
    assert names.index("30-install-mqguard.sh") < names.index("40-mq-kernel-and-limits.sh")
    assert "mqguard preflight --image" in by_name["90-preflight.sh"] and "mount.efs" in by_name["90-preflight.sh"]
    assert names.index("15-mqm-user.sh") < names.index("45-imds-firewall.sh"), "mqm's UID is known when it is used"
    assert "systemctl enable mqguard-imds-firewall.service" in by_name["45-imds-firewall.sh"]
    # issue 26 item 9: the RHEL image can be built - efs-utils from a pinned aws/efs-utils release, chrony on the
    # Amazon Time Sync Service (no internet NTP in the private subnets); item 6: the agent before the firewall
    assert "git clone --depth 1 --branch \"${EFS_UTILS_VERSION:?}\" https://github.com/aws/efs-utils" in rhel
    assert "make rpm" in rhel and "exit 1" not in rhel.split("amazon-ssm-agent", 1)[0]
    assert "server 169.254.169.123 prefer iburst" in rhel and "systemctl enable chronyd" in rhel
    assert variables["efs_utils_version"]["default"].startswith("v")
    assert names.index("42-cloudwatch-agent.sh") < names.index("45-imds-firewall.sh")
    assert variables["cloudwatch_agent"]["default"] is False
    assert "@IMDS_UIDS@" in (ami / "files" / "imds-owner.nft").read_text()
    assert subprocess.run(["sh", "-n", str(ami / "files" / "mqguard-cloudwatch-agent-start")]).returncode == 0
    assert "|| true" not in by_name["10-packages.sh"].split("amazon-efs-utils", 1)[1].split("fi", 1)[0]
    # packer 1.6 predates metadata_options, imds_support and required_plugins: validate the rest
    text = (ami / "mqguard.pkr.hcl").read_text()
    old = _strip_blocks(text, ("packer {", "  metadata_options {"))
    old = "\n".join(line for line in old.splitlines() if "imds_support" not in line)
    copy = tmp_path / "ami"
    (copy / "scripts").mkdir(parents=True)
    for script in scripts:
        (copy / "scripts" / script.name).write_text(script.read_text())
    shutil.copytree(ami / "files", copy / "files")
    (copy / "mqguard.pkr.hcl").write_text(old)
    res = subprocess.run(["packer", "validate", "-syntax-only", "-var", "region=us-east-1", "-var", "mq_source=/x",
                          "-var", "mqguard_rpm=/y", "-var", "mq_accept_license=true", str(copy)],
                         capture_output=True, text=True, timeout=120, cwd=copy)
    assert res.returncode == 0, res.stdout + res.stderr


def _unquote(node: object) -> object:
    """python-hcl2 8 keeps HCL's quotes on labels and strings: drop them."""
    if isinstance(node, dict):
        return {_unquote(k): _unquote(v) for k, v in node.items() if k != "__is_block__"}  # type: ignore[misc]
    if isinstance(node, list):
        return [_unquote(v) for v in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1]
    return node


def _strip_blocks(text: str, openers: Tuple[str, ...]) -> str:
    out, depth = [], 0
    for line in text.splitlines():
        if depth == 0 and any(line.startswith(o) for o in openers):
            depth = line.count("{") - line.count("}")
            continue
        if depth > 0:
            depth += line.count("{") - line.count("}")
            continue
        out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------------ 2-4. deployed into moto

@pytest.mark.parametrize("name", list(PARAMETER_SETS))
def test_deployed_stack_has_what_mqguard_needs(name: str, moto: MotoAsg, template: kit.Template,
                                               tmp_path: Path) -> None:
    params = dict(PARAMETER_SETS[name])
    if "ExistingVpcId" in params:
        params.update(existing_network(moto))
    began = time.monotonic()
    d = deploy(moto, template, params)
    print(f"\nFIGURE moto deployment {name}: {time.monotonic() - began:.1f} s")
    assert d.problems() == []
    tls = params.get("EfsMount", "efs-utils-tls") == "efs-utils-tls"
    assert kit.user_data_problems(d.user_data(), tls, tmp_path) == []
    assert stackcheck.config_problems(d) == []
    assert stackcheck.mount_problems(d.user_data()) == []
    assert stackcheck.root_step_problems(d.user_data()) == []
    assert stackcheck.efs_policy_problems(d) == []
    if tls:  # the policy check really ran: moto holds the stack's policy (kit.patch_moto_nlb)
        policy = json.loads(moto.client("efs").describe_file_system_policy(FileSystemId=d.outputs["FileSystemId"])[
            "Policy"])
        assert any(st["Sid"] == "TlsOnly" for st in policy["Statement"])
    assert network.Network(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, **params}).problems() == []
    if params.get("WarmPool") == "true":
        # moto's CloudFormation does not implement AWS::AutoScaling::WarmPool (it says so and skips it):
        # check the resource in the template; only a real stack proves the pool itself
        pool = template["Resources"]["WarmPoolResource"]
        assert pool["Condition"] == "UseWarmPool" and pool["Properties"]["PoolState"] == "Stopped"
        assert pool["Properties"]["AutoScalingGroupName"] == {"Ref": "Group"}
        assert template["Conditions"]["UseWarmPool"] == {"Fn::And": [{"Fn::Equals": [{"Ref": "WarmPool"}, "true"]},
                                                                     {"Fn::Not": [{"Condition": "MultiInstance"}]}]}
        # the refresh's function ran (its inline code, answering moto's response URL) with the deployed values
        sent = [e for e in kit.CUSTOM_EVENTS if e["StackId"].split("/")[1] == d.stack]
        assert [e["LogicalResourceId"] for e in sent] == ["WarmPoolRefresh"]
        lt = d.group()["LaunchTemplate"]
        assert sent[0]["ResourceProperties"]["GroupName"] == d.group_name
        assert sent[0]["ResourceProperties"]["LaunchTemplateId"] == lt["LaunchTemplateId"]
        assert str(sent[0]["ResourceProperties"]["LaunchTemplateVersion"]) == str(lt["Version"])
    assert d.outputs["ClientEndpoint"].endswith("(1414)") and d.outputs["AutoScalingGroupName"] == d.group_name


def test_iam_proof_evaluates_every_autoscaling_action() -> None:
    own = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0a1b:autoScalingGroupName/s-mq"
    policy = kit.example_policy_rendered(own.replace("0a1b", "*"))
    actions = kit.autoscaling_actions()
    assert len(actions) > 50 and "autoscaling:SetInstanceHealth" in actions
    assert kit.iam_problems(policy, own, own.replace("s-mq", "other")) == []
    wide = json.loads(json.dumps(policy).replace("autoScalingGroupName/s-mq", "autoScalingGroupName/*"))
    assert any("another group" in p for p in kit.iam_problems(wide, own, own.replace("s-mq", "other")))
    print(f"\nFIGURE IAM proof: {len(actions)} autoscaling actions x 3 resources evaluated")


# ------------------------------------------------------------------ 5. end to end

@pytest.fixture
def aws_proxy(moto: MotoAsg) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto.url, []).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_mqguard_with_the_rendered_config_reports_the_deployed_groups_instance(
    moto: MotoAsg, template: kit.Template, tmp_path: Path, efs: FakeEfs, imds: ImdsServer, aws_proxy: FaultProxy
) -> None:
    d = deploy(moto, template, {})
    instance = d.group()["Instances"][0]["InstanceId"]
    imds.paths["meta-data/instance-id"] = instance
    import yaml

    stack_conf = next(f["content"] for f in yaml.safe_load(d.user_data())["write_files"]
                      if f["path"] == "/etc/mqguard/conf.d/10-stack.conf")
    h = Harness(tmp_path, efs)
    try:
        h.configure(health={"grace_period": "3s"})
        # the stack's file as written on the instance, then what differs in this test machine
        conf_d = h.conf.parent / "conf.d"
        conf_d.mkdir(exist_ok=True)
        (conf_d / "10-stack.conf").write_text(stack_conf)
        (conf_d / "90-test.conf").write_text(
            f"[queue_manager]\nmq_bin_dir = {h.bindir}\nrun_as =\ndata_dir = {efs.path}/qmgrs\n"
            f"log_dir = {efs.path}/logs\nmqsc_dir = {h.mqsc_dir}\nlistener_port = {h.port}\n"
            "start_timeout = 60s\nstop_timeout = 10s\n"
            f"[storage]\npath = {efs.path}\nfstypes = {h.sections['storage']['fstypes']}\nmount_timeout = 30s\n"
            "[health]\ngrace_period = 3s\npoll_interval = 1s\ncommand_timeout = 3s\n"
            f"[aws]\nregion = us-east-1\nendpoint_url = {aws_proxy.url}\nimds_url = {imds.url}\n"
            f"[metrics]\nlisten = 127.0.0.1:{free_port()}\n"
            f"[control]\nsocket = {tmp_path}/ctl/mqguard.sock\n")
        h._log_fh = open(h.log, "ab")  # start with the files above, not a rewritten config
        h.proc = subprocess.Popen([*h.command, "run", "--config", str(h.conf)], env=h.env(), stdout=h._log_fh,
                                  stderr=subprocess.STDOUT)
        h.wait_log(r"QM1: running", timeout=30)
        assert f"asg_name = {d.group_name}" in stack_conf and "report = autoscaling" in stack_conf
        h.knob("strmqm.exit", "71")
        os.kill(h.controllers()[0], signal.SIGKILL)
        began = time.monotonic()
        wait_until(lambda: moto.health(instance) == "Unhealthy", 30, "the deployed group's instance Unhealthy")
        print(f"\nFIGURE crash for good to Unhealthy in the deployed group (grace 3s): "
              f"{time.monotonic() - began:.1f} s")
        assert any(action == "SetInstanceHealth" for action, _ in aws_proxy.seen)
    finally:
        h.cleanup()


# ------------------------------------------------------------------ 6. broken copies

def _set(path: List[object], value: object) -> Callable[[kit.Template], None]:
    def change(t: kit.Template) -> None:
        node: object = t
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        node[path[-1]] = value  # type: ignore[index]
    return change


def _del(path: List[object]) -> Callable[[kit.Template], None]:
    def change(t: kit.Template) -> None:
        node: object = t
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        del node[path[-1]]  # type: ignore[index,attr-defined]
    return change


def _user_data_edit(old: str, new: str) -> Callable[[kit.Template], None]:
    def change(t: kit.Template) -> None:
        ud = t["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
        assert old in ud[0]
        ud[0] = ud[0].replace(old, new)
    return change


def _ingress(index_of_port: int, field: str, value: object) -> Callable[[kit.Template], None]:
    def change(t: kit.Template) -> None:
        rules = t["Resources"]["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        rule = next(r for r in rules if r["FromPort"] == index_of_port)
        rule[field] = value
    return change


LT = ["Resources", "LaunchTemplate", "Properties", "LaunchTemplateData"]
TG = ["Resources", "TargetGroup", "Properties"]
BROKEN: Dict[str, Callable[[kit.Template], None]] = {
    "IMDSv1 allowed (HttpTokens optional)": _set(LT + ["MetadataOptions", "HttpTokens"], "optional"),
    "IMDS hop limit 2": _set(LT + ["MetadataOptions", "HttpPutResponseHopLimit"], 2),
    "NFS from anywhere": _set(["Resources", "EfsFromInstances", "Properties"],
                              {"GroupId": {"Ref": "EfsSecurityGroup"}, "IpProtocol": "tcp", "FromPort": 2049,
                               "ToPort": 2049, "CidrIp": "0.0.0.0/0"}),
    "health check on /healthz": _set(TG + ["HealthCheckPath"], "/healthz"),
    "health check on the wrong port": _set(TG + ["HealthCheckPort"], "9158"),
    "mqguard's port not admitted": lambda t: t["Resources"].pop("InstanceFromLoadBalancerHealth"),
    "policy for another group": lambda t: t["Resources"]["InstanceRole"]["Properties"]["Policies"][0][
        "PolicyDocument"]["Statement"][0].__setitem__("Resource", {"Fn::Sub": "arn:${AWS::Partition}:autoscaling:"
                                                                   "${AWS::Region}:${AWS::AccountId}:autoScalingGroup"
                                                                   ":*:autoScalingGroupName/other-group"}),
    "termination hook missing": lambda t: t["Resources"]["Group"]["Properties"]["LifecycleHookSpecificationList"].pop(),
    "both mount targets in one AZ": _set(["Resources", "MountTargetB", "Properties", "SubnetId"],
                                         {"Fn::If": ["CreateVpc", {"Ref": "SubnetA"},
                                                     {"Fn::Select": [0, {"Ref": "ExistingSubnetIds"}]}]}),
    "unencrypted EFS": _set(["Resources", "FileSystem", "Properties", "Encrypted"], False),
    "mistyped mqguard key in user data": _user_data_edit("report = autoscaling", "reprot = autoscaling"),
    "TLS-only EFS policy with a plain NFS mount": _user_data_edit("\"${MountSource}\", /MQHA, ${MountType}, "
                                                                 "\"${MountOptions}\"",
                                                                 "\"${FileSystem}.efs.${AWS::Region}.amazonaws.com:/\","
                                                                 " /MQHA, nfs4, \"nfsvers=4.1,hard,timeo=600,"
                                                                 "retrans=2,noresvport,_netdev\""),
    "group health check type ELB": _set(["Resources", "Group", "Properties", "HealthCheckType"], "ELB"),
    "autoscaling:* for the instances": lambda t: t["Resources"]["InstanceRole"]["Properties"]["Policies"][0][
        "PolicyDocument"]["Statement"][0].__setitem__("Action", "autoscaling:*"),
    "unencrypted root volume": lambda t: t["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"][
        "BlockDeviceMappings"][0]["Ebs"].__setitem__("Encrypted", False),
    "clients from the whole internet by default": _set(["Parameters", "ClientCidr", "Default"], "0.0.0.0/0"),
    "MQ port open to the world": _ingress(1414, "CidrIp", "0.0.0.0/0"),
    "a mistyped CloudFormation property": lambda t: t["Resources"]["TargetGroup"]["Properties"].__setitem__(
        "HealthCheckPth", "/active"),
    "a reference to nothing": _set(["Resources", "Listener", "Properties", "LoadBalancerArn"], {"Ref": "Nlb"}),
    # ---- issue 17: values the stack writes into mqguard's config must agree with the stack
    "launch hook name in the config differs": _user_data_edit("launch_hook = mq-launch", "launch_hook = mq-launching"),
    "termination hook name in the config differs": _user_data_edit("termination_hook = mq-terminate",
                                                                   "termination_hook = mq-term"),
    "asg_name in the config differs": _user_data_edit("asg_name = ${AWS::StackName}-mq",
                                                      "asg_name = ${AWS::StackName}-mqs"),
    "fstypes do not fit the mount type": _user_data_edit("fstypes = nfs4", "fstypes = nfs"),
    "mqguard listens on loopback only": _user_data_edit("listen = 0.0.0.0:9157", "listen = 127.0.0.1:9157"),
    "mqguard listens on another port": _user_data_edit("listen = 0.0.0.0:9157", "listen = 0.0.0.0:9158"),
    "multi_instance always true": _set(LT + ["UserData", "Fn::Base64", "Fn::Sub", 1, "MultiInstanceFlag"], "true"),
    "MQ listener port differs from the target group's": _user_data_edit("name = ${QueueManagerName}\n",
                                                                         "name = ${QueueManagerName}\n"
                                                                         "      listener_port = 1415\n"),
    # ---- every mount retried and ordered before MQ
    "mq@ has no RequiresMountsFor": _user_data_edit("end it before EFS goes\n      RequiresMountsFor=/MQHA",
                                                     "end it before EFS goes\n      After=network.target"),
    "the mount is tried once": _user_data_edit("Restart=on-failure", "Restart=no"),
    "fstab line without noauto": lambda t: _replace_in(t, "LaunchTemplate", "_netdev,noauto,", "_netdev,"),
    "mqguard started before daemon-reload": _user_data_edit(
        "  - [ systemctl, daemon-reload ]\n  - [ systemctl, enable, --now, --no-block, mqha-mount.service ]\n"
        "  - [ systemctl, enable, --now, --no-block, mqguard.service ]\n",
        "  - [ systemctl, enable, --now, --no-block, mqguard.service ]\n  - [ systemctl, daemon-reload ]\n"
        "  - [ systemctl, enable, --now, --no-block, mqha-mount.service ]\n"),
    # ---- every port open both ways, in both VPC modes, nothing around the load balancer
    "no egress for instance-to-instance MQ": lambda t: t["Resources"].pop("InstanceToInstanceMqOut"),
    "a pair's mqguards cannot ask each other": lambda t: t["Resources"].pop("InstanceToInstanceMqguard"),
    "no egress for the load balancer's health checks": lambda t: t["Resources"].pop("LoadBalancerToInstancesHealth"),
    "load balancer without a security group": lambda t: t["Resources"]["LoadBalancer"]["Properties"].pop(
        "SecurityGroups"),
    "clients admitted on the instances directly": lambda t: t["Resources"].__setitem__("Direct", {
        "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": {"Ref": "InstanceSecurityGroup"}, "IpProtocol": "tcp", "FromPort": 1414, "ToPort": 1414,
            "CidrIp": {"Ref": "ClientCidr"}}}),
    "health checks admitted from the VPC range": _set(["Resources", "InstanceFromLoadBalancerHealth", "Properties"], {
        "GroupId": {"Ref": "InstanceSecurityGroup"}, "IpProtocol": "tcp", "FromPort": 9157, "ToPort": 9157,
        "CidrIp": {"Ref": "VpcCidr"}}),
    "MQ through the load balancer only in a new VPC": _set(["Resources", "InstanceFromLoadBalancerMq", "Condition"],
                                                           "CreateVpc"),
    "no LDAP egress although LdapCidr is given": lambda t: t["Resources"].pop("InstanceToLdap"),
    # ---- the group, the file system and the image
    "group health-check grace period back": _set(["Resources", "Group", "Properties", "HealthCheckGracePeriod"],
                                                 {"Ref": "StartTimeout"}),
    "group does not wait for the third mount target": lambda t: t["Resources"]["MountTargetsReady"]["Metadata"][
        "MountTargets"].pop(),
    "no rolling update": lambda t: t["Resources"]["Group"].pop("UpdatePolicy"),
    "load balancer deletion protection always on": lambda t: _replace_in(
        t, "LoadBalancer", '{"Fn::If": ["LoadBalancerProtected", "true", "false"]}', '"true"'),
    "EFS retained when the first create fails": _set(["Resources", "FileSystem", "DeletionPolicy"], "Retain"),
    "root access on EFS for the instance role": lambda t: t["Resources"]["FileSystem"]["Properties"][
        "FileSystemPolicy"]["Fn::If"][1]["Statement"][2]["Action"].append("elasticfilesystem:ClientRootAccess"),
    "TLS mount without the access point": lambda t: _replace_in(
        t, "LaunchTemplate", '{"Fn::Sub": "_netdev,noauto,nofail,tls,iam,accesspoint=${AccessPoint},noresvport,nodev,'
        'nosuid"}', '"_netdev,noauto,nofail,tls,iam,noresvport,nodev,nosuid"'),
    "RHEL root device mapped as /dev/xvda": _set(["Mappings", "RootDevice", "rhel9", "Name"], "/dev/xvda"),
    # security round 3 HIGH 1: root following a path an EFS writer controls
    "root makes the queue manager's parents": _user_data_edit(
        "      RequiresMountsFor=/MQHA\n      After=mqha-mount.service\n  - path: /usr/local/sbin/mqguard-fetch-mqsc",
        "      RequiresMountsFor=/MQHA\n      After=mqha-mount.service\n      [Service]\n"
        "      ExecStartPre=+/usr/bin/install -d -o mqm -g mqm -m 2775 /MQHA/qmgrs /MQHA/logs\n"
        "  - path: /usr/local/sbin/mqguard-fetch-mqsc"),
    "the mount unit chowns below the mount point": _user_data_edit(
        "      ExecStartPost=-/usr/bin/chown mqm:mqm /MQHA\n",
        "      ExecStartPost=-/usr/bin/chown mqm:mqm /MQHA\n      ExecStartPost=/usr/bin/chown -R mqm:mqm /MQHA/qmgrs\n"),
    # ---- issue 26: updates never lose data or run old MQ
    "the access point makes every local user mqm": _set(["Resources", "AccessPoint", "Properties", "PosixUser"],
                                                       {"Uid": {"Ref": "MqmUid"}, "Gid": {"Ref": "MqmGid"}}),
    "a second access point made from MqmUid, which the stack policy does not name": lambda t: t["Resources"].__setitem__(
        "LogsAccessPoint", {"Type": "AWS::EFS::AccessPoint", "Properties": {
            "FileSystemId": {"Ref": "FileSystem"}, "RootDirectory": {"Path": "/mqlogs", "CreationInfo": {
                "OwnerUid": {"Ref": "MqmUid"}, "OwnerGid": {"Ref": "MqmGid"}, "Permissions": "2770"}}}}),
    "the file system deleted when an update replaces it": _set(["Resources", "FileSystem", "UpdateReplacePolicy"],
                                                               "Delete"),
    "a warm pool nothing refreshes": lambda t: t["Resources"].pop("WarmPoolRefresh"),
    "the refresh not keyed on the launch template's version": _del(["Resources", "WarmPoolRefresh", "Properties",
                                                                    "LaunchTemplateVersion"]),
    "the refresh replaces the instance the update just made": lambda t: _replace_in(
        t, "WarmPoolRefreshFunction", '\\"SkipMatching\\": True', '\\"SkipMatching\\": False'),
    "the update does not wait for mqguard's signal": _set(["Resources", "Group", "UpdatePolicy",
                                                          "AutoScalingRollingUpdate", "WaitOnResourceSignals"], False),
    "the update waits 2 minutes for a signal": _set(["Resources", "Group", "UpdatePolicy", "AutoScalingRollingUpdate",
                                                    "PauseTime"], "PT2M"),
    "the first create waits for one signal from a pair": _set(["Resources", "Group", "CreationPolicy",
                                                              "ResourceSignal", "Count"], 1),
    "a failed launch retried in the same AZ only": _set(["Resources", "Group", "Properties",
                                                        "AvailabilityZoneDistribution",
                                                        "CapacityDistributionStrategy"], "balanced-only"),
    "the group launches in every given subnet": _set(["Resources", "Group", "Properties", "VPCZoneIdentifier",
                                                     "Fn::If", 2], {"Ref": "ExistingSubnetIds"}),
    "no logs endpoint for the CloudWatch agent": lambda t: t["Resources"].pop("LogsEndpoint"),
    "the agent may not write its log group": lambda t: _replace_in(
        t, "CloudWatchAgentPolicy", "log-group:/mqguard/prometheus", "log-group:/mqguard/other"),
    "user data never starts the CloudWatch agent": _set(LT + ["UserData", "Fn::Base64", "Fn::Sub", 1,
                                                             "CloudWatchAgentStart", "Fn::If", 1], "# no agent"),
}


def _replace_in(t: kit.Template, resource: str, old: str, new: str) -> None:
    text = json.dumps(t["Resources"][resource])
    assert old in text, old
    t["Resources"][resource] = json.loads(text.replace(old, new))


def first_rejection(variant: kit.Template, moto: MotoAsg, tmp: Path) -> Tuple[str, List[str]]:
    """The first check (cheapest first) that rejects ``variant``: (check, its complaints)."""
    path = kit.write_json(variant, tmp)
    policy = updatecheck.load_policy()
    for check, run in (("cfn-guard", lambda: kit.cfn_guard(path)), ("mount targets", lambda: kit.mount_target_problems(
            variant)), ("template", lambda: network.template_problems(variant)),
            ("stack policy", lambda: updatecheck.stack_policy_problems(variant, policy)),
            ("warm pool refresh", lambda: updatecheck.warm_pool_problems(variant)),
            ("update signals and AZs", lambda: updatecheck.signal_problems(variant)),
            ("CloudWatch agent", lambda: updatecheck.agent_problems(variant))):
        problems = run()
        if problems:
            return check, problems
    for mode, params in NETWORK_SETS.items():
        try:
            problems = network.Network(variant, params).problems()
        except Exception as exc:  # the variant does not even resolve
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            return f"network ({mode})", problems
    problems = kit.cfn_lint(path)
    if problems:
        return "cfn-lint", problems
    try:
        d = deploy(moto, variant, {})
    except Exception as exc:  # moto refused the stack itself
        return "moto deployment", [str(exc)[:300]]
    for check, run in (("deployed resources", d.problems),
                       ("user data", lambda: kit.user_data_problems(d.user_data(), True, tmp)),
                       ("config vs stack", lambda: stackcheck.config_problems(d)),
                       ("mounts", lambda: stackcheck.mount_problems(d.user_data())),
                       ("root steps on the EFS", lambda: stackcheck.root_step_problems(d.user_data())),
                       ("EFS policy vs mount", lambda: stackcheck.efs_policy_problems(d))):
        problems = run()
        if problems:
            return check, problems
    return "", []


def test_every_broken_copy_is_rejected_and_we_say_by_what(moto: MotoAsg, template: kit.Template,
                                                           tmp_path: Path) -> None:
    assert len(BROKEN) >= 60
    caught: Dict[str, str] = {}
    missed = []
    for i, (name, change) in enumerate(BROKEN.items()):
        d = tmp_path / f"v{i}"
        d.mkdir()
        check, problems = first_rejection(kit.mutate(template, change), moto, d)
        if not check:
            missed.append(name)
        else:
            caught[name] = f"{check}: {problems[0][:120]}"
    print("\nbroken copies and the check that caught each:")
    for name, how in caught.items():
        print(f"  {name:45} <- {how}")
    assert missed == [], f"not rejected by any check: {missed}"


# ------------------------------------------------------------------ 7. tunables and the stack's MQSC

def test_the_stacks_tunables_reach_mqguards_configuration(moto: MotoAsg, template: kit.Template) -> None:
    """Issue 27: what `mqguard history --advise` tunes could not be applied durably on the kit (an instance's own
    conf.d goes with the instance): the stack takes them as parameters and writes them into 10-stack.conf."""
    d = deploy(moto, template, {"GracePeriod": "1m30s", "RestartAttempts": "5", "LockWait": "90s"})
    cfg = stackcheck.mqguard_config(stackcheck.parse_user_data(d.user_data()))
    assert (cfg.health.grace_period, cfg.health.restart_attempts, cfg.queue_manager.lock_wait) == (90.0, 5, 90.0)


def test_the_stacks_mqsc_is_fetched_from_its_parameter_and_the_only_one_readable(moto: MotoAsg,
                                                                                template: kit.Template,
                                                                                tmp_path: Path) -> None:
    """Issue 27: how the operator's MQSC reaches a kit instance. The user data's script, as the template has it,
    run with the real AWS CLI against moto's SSM; the role may read that one parameter and nothing else."""
    script = tmp_path / "mqguard-fetch-mqsc"
    script.write_text(kit.user_data_files(template)["/usr/local/sbin/mqguard-fetch-mqsc"])
    script.chmod(0o755)
    mqsc = "DEFINE QLOCAL('APP.IN') REPLACE\nSET CHLAUTH('APP.SVRCONN') TYPE(BLOCKUSER) USERLIST('nobody')\n"
    moto.client("ssm").put_parameter(Name="/mq-test/QM1/mqsc", Value=mqsc, Type="String", Overwrite=True)
    out = tmp_path / "50-stack.mqsc"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": moto.url, "MQSC_FILE": str(out),
           "MQSC_FETCH_TRIES": "2", "MQSC_FETCH_PAUSE": "0"}
    res = subprocess.run([str(script), "/mq-test/QM1/mqsc", "us-east-1"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out.read_text().strip() == mqsc.strip() and oct(out.stat().st_mode)[-3:] == "644"
    out.unlink()
    res = subprocess.run([str(script), "", "us-east-1"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and not out.exists(), "no parameter named: nothing fetched, nothing written"
    res = subprocess.run([str(script), "/mq-test/none", "us-east-1"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and "could not read SSM parameter /mq-test/none" in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("50-stack")) == [], "no partial file"
    # the instance role: that one parameter, nothing else of Parameter Store
    res_ = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR,
                                      "MqscParameterName": "/mq-prod/QM1/mqsc"})
    statements = [st for r in res_.resources().values() if r["Type"] == "AWS::IAM::Policy"
                  for st in res_.value(r["Properties"])["PolicyDocument"]["Statement"]]
    policy = {"Statement": statements}
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter"
    assert kit.allowed(policy, "ssm:GetParameter", f"{arn}/mq-prod/QM1/mqsc")
    for other in (f"{arn}/mq-prod/QM1/other", f"{arn}/mq-prod/QM1/mqsc2", f"{arn}/db/password"):
        assert not kit.allowed(policy, "ssm:GetParameter", other), other
    assert not kit.allowed(policy, "ssm:GetParameters", f"{arn}/mq-prod/QM1/mqsc")
    assert not kit.allowed(policy, "ssm:PutParameter", f"{arn}/mq-prod/QM1/mqsc")
    runcmd = stackcheck.parse_user_data(deploy(moto, template, {"MqscParameterName": "/mq-prod/QM1/mqsc"})
                                        .user_data())["runcmd"]
    fetch = next(i for i, c in enumerate(runcmd) if "mqguard-fetch-mqsc" in str(c))
    start = next(i for i, c in enumerate(runcmd) if "mqguard.service" in str(c))
    assert fetch < start and "/mq-prod/QM1/mqsc" in str(runcmd[fetch]), "fetched before mqguard starts"


def test_the_storage_check_may_read_its_own_file_system_only(template: kit.Template) -> None:
    """Issue 28: `mqguard preflight --storage` reads the throughput mode and burst credits, read-only."""
    res = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR})
    statements = [st for r in res.resources().values() if r["Type"] == "AWS::IAM::Policy"
                  for st in json.loads(json.dumps(res.value(r["Properties"]), default=str))[
                      "PolicyDocument"]["Statement"]]
    policy = {"Statement": statements}
    # the ARN is spelled with !Sub (moto's CloudFormation has no GetAtt Arn for a file system); the resolver
    # leaves the resource's ${FileSystem} in place, which stands for this stack's file system here
    own = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/${FileSystem}"
    assert kit.allowed(policy, "elasticfilesystem:DescribeFileSystems", own)
    assert not kit.allowed(policy, "elasticfilesystem:DescribeFileSystems",
                           "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-other")
    assert kit.allowed(policy, "cloudwatch:GetMetricStatistics", "*")
    for action in ("elasticfilesystem:DeleteFileSystem", "elasticfilesystem:PutFileSystemPolicy",
                   "cloudwatch:PutMetricData"):
        assert not kit.allowed(policy, action, own) and not kit.allowed(policy, action, "*"), action
