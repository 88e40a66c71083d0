"""The Native HA stack (deploy/cloudformation/mqguard-nativeha.yaml) deployed into moto and read back through the
services' own APIs, and the template's rules no deployment shows (what survives a stack deletion, what the
replication group admits): what issue 30's kit must hold, checked the way the EFS stack's kit is."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List

import yaml

from tests.deploy import kit

TEMPLATE = kit.ROOT / "deploy" / "cloudformation" / "mqguard-nativeha.yaml"
NAMES = ("a", "b", "c")
PORT = "9414"


def static_problems(t: kit.Template) -> List[str]:
    """What the template must say that moto cannot show."""
    p: List[str] = []
    res = t["Resources"]
    for n in NAMES:
        v = res.get(f"Volume{n.upper()}", {})
        if v.get("DeletionPolicy") != "Retain" or v.get("UpdateReplacePolicy") != "Retain":
            p.append(f"Volume{n.upper()}: the data must survive the stack (DeletionPolicy and UpdateReplacePolicy "
                     "Retain)")
        if v.get("Properties", {}).get("Encrypted") is not True:
            p.append(f"Volume{n.upper()} is not encrypted")
    repl = [(name, r) for name, r in res.items() if r["Type"] in ("AWS::EC2::SecurityGroupIngress",
                                                                   "AWS::EC2::SecurityGroupEgress")
            and r["Properties"].get("GroupId") == {"Ref": "ReplicationSecurityGroup"}]
    for name, r in repl:
        props = r["Properties"]
        peer = props.get("SourceSecurityGroupId") or props.get("DestinationSecurityGroupId")
        if peer != {"Ref": "ReplicationSecurityGroup"} or "CidrIp" in props:
            p.append(f"{name}: replication admitted from or to something else than the three instances")
        if props.get("FromPort") != {"Ref": "ReplicationPort"} or props.get("ToPort") != {"Ref": "ReplicationPort"}:
            p.append(f"{name}: more than the replication port between the instances")
    group = res.get("ReplicationSecurityGroup", {}).get("Properties", {})
    for rule in group.get("SecurityGroupIngress", []) + [r for r in group.get("SecurityGroupEgress", [])
                                                           if r.get("CidrIp") != "127.0.0.1/32"]:
        p.append(f"ReplicationSecurityGroup has an inline rule {rule}")
    if len(repl) != 2:
        p.append(f"expected the replication group's two rules (in and out), found {len(repl)}")
    for n in NAMES:  # how a new instance finds its own volume and interface (the attach script's filters)
        for kind in ("Volume", "ReplicationInterface"):
            tags = {tg["Key"]: tg["Value"] for tg in res.get(f"{kind}{n.upper()}", {}).get("Properties", {}).get(
                "Tags", [])}
            if tags.get("mqguard:stack") != {"Ref": "AWS::StackName"} or tags.get("mqguard:nha-instance") != n:
                p.append(f"{kind}{n.upper()} is not tagged for instance {n} of this stack: {tags}")
        eni = res.get(f"ReplicationInterface{n.upper()}", {}).get("Properties", {})
        if eni.get("GroupSet") != [{"Ref": "ReplicationSecurityGroup"}]:
            p.append(f"ReplicationInterface{n.upper()} is not in the replication group alone: {eni.get('GroupSet')}")
    order = [res.get(f"Group{n.upper()}", {}).get("DependsOn", []) for n in NAMES]
    if "GroupA" not in order[1] or "GroupB" not in order[2]:
        p.append("the three groups are not updated one after the other (one instance down at a time)")
    return p


class NhaDeployed:
    def __init__(self, client: Callable[[str], Any], stack: str, template: kit.Template,
                 params: Dict[str, str]) -> None:
        self.client, self.stack, self.params = client, stack, params
        self.outputs, self.resources = kit.create_stack(client, stack, template, params)

    def groups(self) -> Dict[str, Dict[str, Any]]:
        names = [f"{self.stack}-nha-{n}" for n in NAMES]
        found = self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=names)
        return {g["AutoScalingGroupName"][-1]: g for g in found["AutoScalingGroups"]}

    def tagged(self, kind: str) -> Dict[str, Dict[str, Any]]:
        """This stack's volumes or replication interfaces, by instance (read back by their ids: moto's
        CloudFormation drops a volume's tags, so the tags are checked in the template, static_problems)."""
        ec2 = self.client("ec2")
        prefix = "Volume" if kind == "volume" else "ReplicationInterface"
        ids = {n: self.resources.get(f"{prefix}{n.upper()}", "") for n in NAMES}
        out: Dict[str, Dict[str, Any]] = {}
        for n, rid in ids.items():
            if not rid:
                continue
            found = ec2.describe_volumes(VolumeIds=[rid])["Volumes"] if kind == "volume" else \
                ec2.describe_network_interfaces(NetworkInterfaceIds=[rid])["NetworkInterfaces"]
            out[n] = found[0]
        return out

    def user_data(self) -> str:
        g = next(iter(self.groups().values()))
        lt = g["LaunchTemplate"]
        versions = self.client("ec2").describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])
        return base64.b64decode(versions["LaunchTemplateVersions"][-1]["LaunchTemplateData"]["UserData"]).decode()

    def policies(self) -> List[Dict[str, Any]]:
        iam = self.client("iam")
        role = self.resources["InstanceRole"]
        out = []
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            out.append(kit.policy_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]))
        return out

    def problems(self, tmp: Path) -> List[str]:
        p: List[str] = []
        ec2, elb = self.client("ec2"), self.client("elbv2")
        groups, volumes, enis = self.groups(), self.tagged("volume"), self.tagged("interface")
        if sorted(groups) != list(NAMES):
            return [f"expected three groups -nha-a/b/c, found {sorted(groups)}"]
        zone_of: Dict[str, str] = {}
        for n, g in groups.items():
            if (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) != (1, 1, 1):
                p.append(f"group {n}: size {g['MinSize']}/{g['MaxSize']}/{g['DesiredCapacity']}, expected 1/1/1")
            subnets = g["VPCZoneIdentifier"].split(",")
            if len(subnets) != 1:
                p.append(f"group {n} spans {len(subnets)} subnets: its volume lives in one AZ")
                continue
            zone_of[n] = ec2.describe_subnets(SubnetIds=subnets)["Subnets"][0]["AvailabilityZone"]
            tags = {t["Key"]: t["Value"] for t in g["Tags"]}
            if tags.get("mqguard-nha-instance") != n:
                p.append(f"group {n} tags its instances mqguard-nha-instance={tags.get('mqguard-nha-instance')}")
            if g["HealthCheckType"] != "EC2":
                p.append(f"group {n}: health check {g['HealthCheckType']} (a replica's /active is 503 by design)")
            hooks = {h["LifecycleHookName"] for h in self.client("autoscaling").describe_lifecycle_hooks(
                AutoScalingGroupName=g["AutoScalingGroupName"])["LifecycleHooks"]}
            if hooks != {"mq-launch", "mq-terminate"}:
                p.append(f"group {n}: lifecycle hooks {sorted(hooks)}")
            vol, eni = volumes.get(n), enis.get(n)
            if vol is None or vol["AvailabilityZone"] != zone_of[n]:
                p.append(f"instance {n}: its volume is in {vol and vol['AvailabilityZone']}, its group in "
                         f"{zone_of[n]} (a volume attaches in its own AZ only)")
            # (encryption: moto's CloudFormation drops it; static_problems checks the template)
            if eni is None or eni["SubnetId"] != subnets[0]:
                p.append(f"instance {n}: its replication interface is in {eni and eni['SubnetId']}, its group in "
                         f"{subnets[0]}")
            # (its security group: moto's CloudFormation drops GroupSet; static_problems checks the template)
        if len(set(zone_of.values())) != 3:
            p.append(f"the three groups are not in three AZs: {zone_of}")
        p += self._replication_rules(ec2)
        p += self._load_balancer(elb, groups)
        p += self._user_data(enis, tmp)
        p += self._iam()
        return p

    def _replication_rules(self, ec2: Any) -> List[str]:
        sg = self.resources["ReplicationSecurityGroup"]
        got = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
        want = [(PORT, PORT, [sg])]
        seen = [(str(r.get("FromPort")), str(r.get("ToPort")), [x["GroupId"] for x in r.get("UserIdGroupPairs", [])])
                for r in got]
        bad = [r for r in got if r.get("IpRanges") or r.get("Ipv6Ranges")]
        return ([] if seen == want else [f"replication ingress {seen}, expected {want}"]) + \
            [f"replication admitted from address ranges {r.get('IpRanges')}" for r in bad]

    def _load_balancer(self, elb: Any, groups: Dict[str, Dict[str, Any]]) -> List[str]:
        p: List[str] = []
        arns = {tuple(g.get("TargetGroupARNs", [])) for g in groups.values()}
        if len(arns) != 1 or len(next(iter(arns))) != 1:
            return [f"the three groups must share one target group, found {arns}"]
        tg = elb.describe_target_groups(TargetGroupArns=list(next(iter(arns))))["TargetGroups"][0]
        if (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg.get("HealthCheckPath")) != ("HTTP", "9157",
                                                                                              "/active"):
            p.append(f"health check {tg['HealthCheckProtocol']}:{tg['HealthCheckPort']}{tg.get('HealthCheckPath')},"
                     " expected HTTP:9157/active")
        lbs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerArn"] in
               tg.get("LoadBalancerArns", [])]
        if not lbs or lbs[0]["Type"] != "network":
            p.append("the target group is not behind a network load balancer")
        return p

    def _user_data(self, enis: Dict[str, Dict[str, Any]], tmp: Path) -> List[str]:
        p: List[str] = []
        text = self.user_data()
        path = tmp / "user-data.yaml"
        path.write_text(text)
        res = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:
            return [f"cloud-init schema: {(res.stdout + res.stderr).strip()[-300:]}"]
        files = {f["path"]: f["content"] for f in yaml.safe_load(text).get("write_files", [])}
        conf = files.get("/etc/mqguard/conf.d/10-stack.conf", "")
        want = ", ".join(f"{n}={enis[n]['PrivateIpAddress']}({PORT})" for n in NAMES if n in enis)
        if f"instances = {want}\n" not in conf:
            p.append(f"the configuration's instances are not the three replication interfaces ({want})")
        # what the boot script adds on a host of group b, then mqguard's own validation
        drop_in = tmp / "etc" / "conf.d"
        drop_in.mkdir(parents=True, exist_ok=True)
        (drop_in / "20-instance.conf").write_text("[queue_manager]\ninstance_name = b\n[aws]\nasg_name = s-nha-b\n"
                                                  "cfn_resource = GroupB\n")
        p += kit.validate_config(conf, tmp)
        script = files.get("/usr/local/sbin/mqguard-nha-attach", "")
        res = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, timeout=30)
        if not script or res.returncode != 0:
            p.append(f"the attach script does not parse: {res.stderr.strip()[:200]}")
        if "mkfs" in script and "blkid -p" not in script:
            p.append("the attach script formats without asking blkid whether the volume is blank")
        return p

    def _iam(self) -> List[str]:
        p: List[str] = []
        own, other = self.stack, "someone-elses-stack"
        acct = f"arn:aws:ec2:{kit.REGION}:123456789012"
        for policy in self.policies():
            for action, kind in (("ec2:AttachVolume", "volume"), ("ec2:AttachNetworkInterface", "network-interface")):
                ctx_other = {"aws:ResourceTag/mqguard:stack": [other]}
                if kit.allowed(policy, action, f"{acct}:{kind}/vol-0123", context=ctx_other):
                    p.append(f"{action} allowed on another stack's {kind}")
        if not any(kit.allowed(pol, "ec2:AttachVolume", f"{acct}:volume/vol-0123",
                               context={"aws:ResourceTag/mqguard:stack": [own]}) for pol in self.policies()):
            p.append("the instances cannot attach their own stack's volume")
        return p
