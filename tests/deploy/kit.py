"""The deployment kit's checks, each a function that says what is wrong (an empty list: nothing).

Static: cfn-lint, checkov, cfn-guard with the project's rules. Dynamic: the stack
deployed into moto and read back through each service's own API, the instance
policy evaluated against every Auto Scaling action, and the rendered user data
(cloud-init schema, fstab options, ``mqguard validate-config``).
"""

from __future__ import annotations

import ast
import base64
import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "mqguard.yaml"
RULES = ROOT / "deploy" / "cloudformation" / "rules" / "mqguard.guard"
CHECKOV = ROOT / "build" / "checkov-venv" / "bin" / "checkov"
CFN_GUARD = ROOT / "build" / "cfn-guard" / "cfn-guard"
REGION = "us-east-1"
# nodev,nosuid: whoever writes the shared file system must not plant devices or setuid programs for this host
# noauto,nofail: the retrying mount unit mounts it, not boot or cloud-init's one-shot mount -a
NFS_OPTIONS = {"nfsvers=4.1", "hard", "timeo=600", "retrans=2", "noresvport", "_netdev", "nodev", "nosuid", "noauto",
               "nofail"}
TLS_OPTIONS = {"tls", "iam", "accesspoint", "_netdev", "nodev", "nosuid", "noauto", "nofail"}
CLIENT_CIDR = "10.20.0.0/16"  # ClientCidr has no default: the tests' clients
MQGUARD_CALLS = {"autoscaling:SetInstanceHealth", "autoscaling:CompleteLifecycleAction",
                 "autoscaling:RecordLifecycleActionHeartbeat", "autoscaling:CreateOrUpdateTags"}
NO_RESOURCE_LEVEL = {"autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeTags"}  # on "*" only
OWN_TAG = "mqguard:created:QM1"  # the one tag mqguard writes

Template = Dict[str, Any]


def load_template(path: Path = TEMPLATE) -> Template:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def user_data_files(template: Template) -> Dict[str, str]:
    """The files the launch template's user data writes ({path: content}), ${...} left as they are."""
    ud = template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    text = ud["Fn::Sub"][0].replace("${!", "\x00LITERAL\x00")  # CloudFormation's ${!x} is a literal ${x}
    text = re.sub(r"(?m)^(\s*)\$\{[^}]+\}\s*$", r"\1# SUB", text)  # a line that is one whole value
    text = re.sub(r"\$\{[^}]+\}", "SUB", text).replace("\x00LITERAL\x00", "${")  # placeholders YAML can read
    doc = yaml.safe_load(text)
    return {str(f["path"]): str(f.get("content", "")) for f in doc.get("write_files", []) or []}


def write_json(template: Template, directory: Path, name: str = "template.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(template, indent=1))
    return path


# ---------------------------------------------------------------- static checks

def cfn_lint(path: Path) -> List[str]:
    res = subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                          str(path)], capture_output=True, text=True, timeout=120)
    if res.returncode == 0:
        return []
    return [line for line in (res.stdout + res.stderr).splitlines() if line.strip()][:6] or [f"exit {res.returncode}"]


def checkov(path: Path) -> List[str]:
    res = subprocess.run([str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "--skip-download",
                          "--compact", "--quiet", "-o", "json"], capture_output=True, text=True, timeout=300)
    doc = json.loads(res.stdout or "{}")
    failed = doc.get("results", {}).get("failed_checks", [])
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed]


def cfn_guard(path: Path) -> List[str]:
    res = subprocess.run([str(CFN_GUARD), "validate", "-d", str(path), "-r", str(RULES), "--show-summary", "fail"],
                         capture_output=True, text=True, timeout=60)
    if res.returncode == 0:
        return []
    failed = [line.split()[0].split("/", 1)[1] for line in res.stdout.splitlines()
              if line.startswith(RULES.name + "/") and line.rstrip().endswith("FAIL")]
    return [f"rule {rule} fails" for rule in failed] or [(res.stdout + res.stderr)[-500:]]


def mount_target_problems(template: Template) -> List[str]:
    """One EFS mount target per AZ: no two may name the same subnet (expression)."""
    subnets = [json.dumps(r["Properties"]["SubnetId"], sort_keys=True) for r in template["Resources"].values()
               if r["Type"] == "AWS::EFS::MountTarget"]
    return [] if len(subnets) == len(set(subnets)) else ["two EFS mount targets name the same subnet (AZ)"]


def example_policy_rendered(group_arn: str) -> Dict[str, Any]:
    doc = json.loads((ROOT / "examples" / "iam-policy.json").read_text())
    text = json.dumps(doc).replace("arn:aws:autoscaling:REGION:ACCOUNT_ID:autoScalingGroup:*:autoScalingGroupName/"
                                   "ASG_NAME", group_arn)
    return dict(json.loads(text))


# ---------------------------------------------------------------- IAM evaluation

def _matches(patterns: Any, value: str) -> bool:
    pats = patterns if isinstance(patterns, list) else [patterns]
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in pats)


def _condition_holds(condition: Dict[str, Any], context: Dict[str, List[str]]) -> bool:
    """The conditions the kit's policies use, on a request's context ({key: values}); anything else is refused
    as unknown, so a policy cannot pass with a condition this evaluator does not understand."""
    for operator, tests in condition.items():
        for key, want in tests.items():
            if key not in ("aws:TagKeys", "cloudwatch:namespace") and not key.startswith("aws:ResourceTag/"):
                raise AssertionError(f"condition key not evaluated here: {key}")
            values = context.get(key, [])
            wants = want if isinstance(want, list) else [want]
            if operator == "ForAllValues:StringLike":
                if not all(_matches(want, k) for k in values):
                    return False
            elif operator == "Null":
                if (want == "true") != (not values):
                    return False
            elif operator == "StringEquals":
                if not values or not all(v in wants for v in values):
                    return False
            else:
                raise AssertionError(f"condition operator not evaluated here: {operator}")
    return True


def allowed(policy: Dict[str, Any], action: str, resource: str, tag_keys: Optional[List[str]] = None,
            context: Optional[Dict[str, List[str]]] = None) -> bool:
    """Identity-policy evaluation for Allow/Deny with Action/Resource wildcards and the kit's conditions."""
    ctx = {"aws:TagKeys": tag_keys or [], **(context or {})}
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    verdict = False
    for st in statements:
        acts, res = st.get("Action", st.get("NotAction")), st.get("Resource", "*")
        hit = _matches(acts, action) if "Action" in st else not _matches(acts, action)
        if hit and st.get("Condition") and not _condition_holds(st["Condition"], ctx):
            hit = False
        if hit and _matches(res, resource):
            if st["Effect"] == "Deny":
                return False
            verdict = True
    return verdict


def autoscaling_actions() -> List[str]:
    from policy_sentry.querying.actions import get_actions_for_service

    return sorted(get_actions_for_service("autoscaling"))


def iam_problems(policy: Dict[str, Any], own: str, other: str) -> List[str]:
    """mqguard's four calls and nothing else; the three with resources on its own group only."""
    problems = []
    for action in autoscaling_actions():
        for resource, label in ((own, "this group"), (other, "another group"), ("*", "*")):
            got = allowed(policy, action, resource, [OWN_TAG])
            if action in NO_RESOURCE_LEVEL:
                want = True  # no resource-level permission exists for it
            else:
                want = action in MQGUARD_CALLS and resource == own
            if got != want:
                problems.append(f"{action} on {label}: {'allowed' if got else 'denied'}, expected "
                                f"{'allowed' if want else 'denied'}")
    for keys in (["mqguard:stack"], [OWN_TAG, "Name"], []):  # only its own record, never another tag
        if allowed(policy, "autoscaling:CreateOrUpdateTags", own, keys):
            problems.append(f"autoscaling:CreateOrUpdateTags of tags {keys} on this group: allowed, expected denied")
    return problems


# ---------------------------------------------------------------- user data

def user_data_problems(user_data: str, tls: bool, tmp: Path) -> List[str]:
    problems = []
    path = tmp / "user-data.yaml"
    path.write_text(user_data)
    if not user_data.startswith("#cloud-config\n"):
        problems.append("user data is not #cloud-config")
    res = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        problems.append(f"cloud-init schema: {(res.stdout + res.stderr).strip()[-300:]}")
        return problems
    doc = yaml.safe_load(user_data)
    mounts = doc.get("mounts", [])
    efs = [m for m in mounts if len(m) >= 4 and m[1] == "/MQHA"]
    if len(efs) != 1:
        problems.append(f"expected one fstab line for /MQHA, got {mounts}")
    else:
        given = str(efs[0][3]).split(",")
        options = {o.split("=", 1)[0] for o in given} | set(given)
        need = TLS_OPTIONS if tls else NFS_OPTIONS
        if not need <= options:
            problems.append(f"fstab options {sorted(options)} lack {sorted(need - options)}")
        if (efs[0][2] == "efs") != tls:
            problems.append(f"fstab type {efs[0][2]} does not fit the TLS setting ({tls})")
    conf = next((f for f in doc.get("write_files", []) if f["path"] == "/etc/mqguard/conf.d/10-stack.conf"), None)
    if conf is None:
        problems.append("no /etc/mqguard/conf.d/10-stack.conf in user data")
    else:
        problems += validate_config(conf["content"], tmp)
    return problems


def validate_config(text: str, tmp: Path) -> List[str]:
    main = tmp / "etc" / "mqguard.conf"
    main.parent.mkdir(exist_ok=True)
    main.write_text(text)
    res = subprocess.run([sys.executable, "-m", "mqguard", "validate-config", "--config", str(main)],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return [] if res.returncode == 0 else [f"mqguard validate-config: {' '.join(res.stderr.split())[-400:]}"]


# ---------------------------------------------------------------- deployment into moto

CUSTOM_EVENTS: List[Dict[str, Any]] = []  # what CloudFormation (moto) sent each custom resource's function


def patch_moto_nlb(moto_url: str = "") -> Callable[[], None]:
    """Small fixes to moto 5.2's CloudFormation, so the deployment is what AWS would make: the
    load balancer's Type (moto makes an ALB whatever it says), the group's lifecycle hooks, the
    file system's policy, an access point's Ref, and custom resources (moto runs their function
    in Docker: here the function's own inline code runs in a thread, and answers moto's response
    URL over HTTP as it would answer CloudFormation's). Returns the undo."""
    from moto.elbv2 import models

    original = models.FakeLoadBalancer.__dict__["create_from_cloudformation_json"]

    def create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
               **kwargs: Any) -> Any:
        props = cloudformation_json["Properties"]
        return models.elbv2_backends[account_id][region_name].create_load_balancer(
            resource_name, props.get("SecurityGroups"), props.get("Subnets"),
            scheme=props.get("Scheme", "internet-facing"), loadbalancer_type=props.get("Type"))

    models.FakeLoadBalancer.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign]

    # moto 5.2 also ignores an Auto Scaling group's LifecycleHookSpecificationList: create the hooks
    from moto.autoscaling import models as asg_models

    asg_original = asg_models.FakeAutoScalingGroup.__dict__["create_from_cloudformation_json"]

    def create_group(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                     **kwargs: Any) -> Any:
        group = asg_original.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = asg_models.autoscaling_backends[account_id][region_name]
        for hook in cloudformation_json["Properties"].get("LifecycleHookSpecificationList", []):
            backend.create_lifecycle_hook(hook["LifecycleHookName"], group.name, hook["LifecycleTransition"],
                                          int(hook.get("HeartbeatTimeout", 3600)), hook.get("DefaultResult", "ABANDON"))
        return group

    asg_models.FakeAutoScalingGroup.create_from_cloudformation_json = classmethod(create_group)  # type: ignore

    # ... and an EFS file system's FileSystemPolicy (moto keeps none, so a policy check would see none)
    from moto.efs import models as efs_models

    efs_original = efs_models.FileSystem.__dict__["create_from_cloudformation_json"]

    def create_fs(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                  **kwargs: Any) -> Any:
        fs = efs_original.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        policy = cloudformation_json["Properties"].get("FileSystemPolicy")
        if policy:
            efs_models.efs_backends[account_id][region_name].put_file_system_policy(
                fs.file_system_id, json.dumps(policy), False)
        return fs

    efs_models.FileSystem.create_from_cloudformation_json = classmethod(create_fs)  # type: ignore
    # ... and Ref of an access point is its id (moto 5.2 gives the object's repr)
    had_id = "physical_resource_id" in efs_models.AccessPoint.__dict__
    efs_models.AccessPoint.physical_resource_id = property(lambda self: self.access_point_id)  # type: ignore

    from moto.cloudformation import custom_model

    custom_original = custom_model.CustomModel.__dict__["create_from_cloudformation_json"]

    def create_custom(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                      **kwargs: Any) -> Any:
        import io
        import threading
        import types
        import zipfile

        from moto.awslambda.models import lambda_backends
        from moto.cloudformation import cloudformation_backends

        props = cloudformation_json["Properties"]
        fn = lambda_backends[account_id][region_name].get_function(props["ServiceToken"])
        with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as z:
            code = z.read(next(n for n in z.namelist() if n.endswith(".py"))).decode()
        resource = custom_model.CustomModel(region_name, "req-" + resource_name, kwargs["LogicalId"], resource_name)
        cloudformation_backends[account_id][region_name].get_stack(kwargs["StackId"]).add_custom_resource(resource)
        event = {"RequestType": "Create", "ServiceToken": props["ServiceToken"], "StackId": kwargs["StackId"],
                 "ResponseURL": f"{moto_url}/cloudformation_{region_name}/cfnresponse?stack={kwargs['StackId']}",
                 "RequestId": resource.request_id, "LogicalResourceId": kwargs["LogicalId"],
                 "ResourceType": kwargs["ResourceType"], "ResourceProperties": props}
        CUSTOM_EVENTS.append(event)
        module = types.ModuleType("index")
        exec(compile(code, "index.py", "exec"), module.__dict__)  # noqa: S102 - the template's own code, as Lambda runs it
        handler = getattr(module, fn.handler.split(".")[-1])
        threading.Thread(target=handler, args=(event, None), daemon=True).start()
        return resource

    custom_model.CustomModel.create_from_cloudformation_json = classmethod(create_custom)  # type: ignore

    def undo() -> None:
        custom_model.CustomModel.create_from_cloudformation_json = custom_original  # type: ignore
        models.FakeLoadBalancer.create_from_cloudformation_json = original  # type: ignore[method-assign]
        asg_models.FakeAutoScalingGroup.create_from_cloudformation_json = asg_original  # type: ignore
        efs_models.FileSystem.create_from_cloudformation_json = efs_original  # type: ignore
        if not had_id:
            del efs_models.AccessPoint.physical_resource_id  # type: ignore[attr-defined]

    return undo


def policy_document(doc: Any) -> Dict[str, Any]:
    """A role policy as IAM (or moto) returns it, as a dict."""
    if isinstance(doc, str):
        text = urllib.parse.unquote(doc)
        # moto keeps the Python repr of a policy that CloudFormation created (real IAM: JSON)
        doc = ast.literal_eval(text) if text.startswith("{'") else json.loads(text)
    return dict(doc)


def create_stack(client: Callable[[str], Any], stack: str, template: Template,
                 params: Dict[str, str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Create ``stack`` in moto and wait for it: (outputs, {logical id: physical id}); AssertionError if it fails."""
    cf = client("cloudformation")
    cf.create_stack(StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    desc = cf.describe_stacks(StackName=stack)["Stacks"][0]
    deadline = time.monotonic() + 30  # a custom resource's function answers from its own thread
    while desc["StackStatus"] == "CREATE_IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.1)
        desc = cf.describe_stacks(StackName=stack)["Stacks"][0]
    if desc["StackStatus"] != "CREATE_COMPLETE":
        raise AssertionError(f"stack {stack}: {desc['StackStatus']} {desc.get('StackStatusReason')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]}
    return outputs, resources


class Deployed:
    """A stack deployed into moto, read back through the services' own APIs."""

    def __init__(self, client: Callable[[str], Any], stack: str, template: Template, params: Dict[str, str]) -> None:
        self.client = client
        self.stack = stack
        self.params = params
        # moto splits only passed list parameters, not defaults: pass every list parameter
        full = {"SubnetCidrs": "10.42.0.0/24,10.42.1.0/24,10.42.2.0/24", "ClientCidr": CLIENT_CIDR, **params}
        self.outputs, self.resources = create_stack(client, stack, template, full)

    @property
    def group_name(self) -> str:
        return f"{self.stack}-mq"

    def group(self) -> Dict[str, Any]:
        return dict(self.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.group_name])["AutoScalingGroups"][0])

    def launch_template_data(self) -> Dict[str, Any]:
        lt = self.group()["LaunchTemplate"]
        versions = self.client("ec2").describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])
        return dict(versions["LaunchTemplateVersions"][-1]["LaunchTemplateData"])

    def user_data(self) -> str:
        return base64.b64decode(self.launch_template_data()["UserData"]).decode()

    def policy(self) -> Dict[str, Any]:
        iam = self.client("iam")
        role = self.resources["InstanceRole"]
        return policy_document(iam.get_role_policy(RoleName=role, PolicyName="mqguard")["PolicyDocument"])

    def problems(self) -> List[str]:
        """What mqguard needs from the deployed resources, checked through their own APIs."""
        p: List[str] = []
        ec2, efs, elb = self.client("ec2"), self.client("efs"), self.client("elbv2")
        multi = self.params.get("Mode") == "multi-instance"
        azs = int(self.params.get("AvailabilityZoneCount", "2"))
        g = self.group()
        size = 2 if multi else 1
        if (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) != (size, size, size):
            p.append(f"group size {g['MinSize']}/{g['MaxSize']}/{g['DesiredCapacity']}, expected {size}")
        if g["HealthCheckType"] != "EC2":
            p.append(f"group health check type {g['HealthCheckType']}: a load balancer would replace instances")
        subnets = g["VPCZoneIdentifier"].split(",")
        zones = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]}
        if len(set(zones.values())) != azs or len(subnets) != azs:
            p.append(f"group subnets {zones} are not {azs} distinct AZs")
        hooks = {h["LifecycleTransition"]: h for h in self.client("autoscaling").describe_lifecycle_hooks(
            AutoScalingGroupName=self.group_name)["LifecycleHooks"]}
        for transition, name in (("autoscaling:EC2_INSTANCE_LAUNCHING", "mq-launch"),
                                 ("autoscaling:EC2_INSTANCE_TERMINATING", "mq-terminate")):
            if transition not in hooks or hooks[transition]["LifecycleHookName"] != name:
                p.append(f"lifecycle hook {name} ({transition}) missing")
        md = self.launch_template_data().get("MetadataOptions", {})
        if md.get("HttpTokens") != "required" or int(md.get("HttpPutResponseHopLimit", 0)) != 1:
            p.append(f"launch template metadata options {md}: IMDSv2 with hop limit 1 expected")
        fs_id = self.outputs["FileSystemId"]
        fs = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
        if not fs.get("Encrypted"):
            p.append("EFS is not encrypted")
        targets = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
        target_zones = [zones.get(t["SubnetId"]) or ec2.describe_subnets(SubnetIds=[t["SubnetId"]])["Subnets"][0][
            "AvailabilityZone"] for t in targets]
        if sorted(target_zones) != sorted(set(zones.values())):
            p.append(f"EFS mount targets in {target_zones}, expected one in each of {sorted(set(zones.values()))}")
        p += self._security_group_problems(ec2)
        lbs = elb.describe_load_balancers()["LoadBalancers"]
        tgs = elb.describe_target_groups(TargetGroupArns=g["TargetGroupARNs"])["TargetGroups"]
        if len(tgs) != 1:
            p.append(f"expected one target group on the group, got {len(tgs)}")
        else:
            tg = tgs[0]
            if (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg.get("HealthCheckPath")) != ("HTTP", "9157",
                                                                                                  "/active"):
                p.append(f"health check {tg['HealthCheckProtocol']}:{tg['HealthCheckPort']}"
                         f"{tg.get('HealthCheckPath')}, expected HTTP:9157/active")
            lb = [lb for lb in lbs if lb["LoadBalancerArn"] in tg.get("LoadBalancerArns", [])]
            if not lb or lb[0]["Type"] != "network":
                p.append(f"load balancer of the target group: {lb and lb[0]['Type']}, expected network")
            listeners = elb.describe_listeners(LoadBalancerArn=lb[0]["LoadBalancerArn"])["Listeners"] if lb else []
            if [(x["Protocol"], x["Port"]) for x in listeners] != [("TCP", 1414)]:
                p.append(f"listeners {[(x['Protocol'], x['Port']) for x in listeners]}, expected TCP 1414")
        own = f"arn:aws:autoscaling:{REGION}:123456789012:autoScalingGroup:*:autoScalingGroupName/{self.group_name}"
        p += iam_problems(self.policy(), own.replace("*", "0a1b2c3d-1111-2222-3333-444455556666"),
                          own.replace(self.group_name, "someone-elses-group").replace("*", "9f8e7d6c-1111-2222-3333-"
                                                                                          "444455556666"))
        return p

    def _security_group_problems(self, ec2: Any) -> List[str]:
        """NFS as deployed: only from the instances' group (every other flow: tests/deploy/network.py)."""
        p: List[str] = []
        inst_sg, efs_sg = self.resources["InstanceSecurityGroup"], self.resources["EfsSecurityGroup"]
        groups = {g["GroupId"]: g for g in ec2.describe_security_groups(GroupIds=[inst_sg, efs_sg])["SecurityGroups"]}
        nfs = [r for r in groups[efs_sg]["IpPermissions"]
               if r.get("FromPort", 0) <= 2049 <= r.get("ToPort", 65535) or r.get("IpProtocol") == "-1"]
        for r in nfs:
            if r.get("IpRanges") or r.get("Ipv6Ranges"):
                p.append(f"NFS admitted from address ranges {r.get('IpRanges')}")
            if any(pair["GroupId"] != inst_sg for pair in r.get("UserIdGroupPairs", [])):
                p.append("NFS admitted from another security group than the instances'")
        if not nfs:
            p.append("the instances cannot reach EFS on 2049")
        return p


# ---------------------------------------------------------------- helpers for variants

def mutate(template: Template, change: Callable[[Template], None]) -> Template:
    t = copy.deepcopy(template)
    change(t)
    return t


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mqguard-deploy-"))


def which_tools() -> Optional[str]:
    """Why the kit's tools are missing (None when all are there)."""
    for tool, path in (("checkov", CHECKOV), ("cfn-guard", CFN_GUARD)):
        if not Path(path).exists():
            return f"{tool} is not installed at {path} (make deploy-deps installs it)"
    for tool in ("cloud-init", "packer"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deploy-deps installs it)"
    return None

