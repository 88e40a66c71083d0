"""The second deploy and after: what a stack update, an upgrade or a replacement may never do.

Checked on the template (and the shipped stack policy), for the class, not the case:

* no parameter reaches a create-only property of the data's resources (the file system, the access
  point: a change REPLACES them, and the new instance finds an empty directory) unless the stack
  policy denies that replacement; a parameter that decides whether such a resource exists at all
  needs Update:Delete denied too;
* with a warm pool, an update replaces every instance: the rolling update the InService ones, an
  instance refresh keyed on the launch template's version the warm pool's (CloudFormation never
  does, AWS::AutoScaling::WarmPool);
* the update waits for each new instance's signal (mqguard's SignalResource) for as long as the launch
  hook may take, and the first create waits for as many signals as instances;
* a launch that fails in one AZ is tried in another, and an impaired AZ's instances are replaced;
* every shipped CloudWatch agent configuration can do its work: its user reaches instance metadata
  (the AMI's firewall), the role allows its log group and namespace, a new VPC has its endpoints.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Set

from tests.deploy import kit, network

STACK_POLICY = kit.ROOT / "deploy" / "cloudformation" / "stack-policy.json"
DATA_TYPES = ("AWS::EFS::FileSystem", "AWS::EFS::AccessPoint")  # what holds, or roots, the queue manager's data
AGENT_CONFIGS = sorted((kit.ROOT / "monitoring" / "cloudwatch").glob("amazon-cloudwatch-agent*.json"))
PACKER = kit.ROOT / "deploy" / "ami" / "mqguard.pkr.hcl"
FIREWALL_SCRIPT = kit.ROOT / "deploy" / "ami" / "scripts" / "45-imds-firewall.sh"
ACCOUNT = "arn:aws:logs:us-east-1:123456789012"


def load_policy(path: Path = STACK_POLICY) -> Dict[str, Any]:
    return dict(json.loads(path.read_text()))


# ---------------------------------------------------------------- parameters that reach a property

def create_only(resource_type: str) -> List[str]:
    """Top-level create-only properties of a resource type, from the schema cfn-lint ships (AWS's own)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    paths = PROVIDER_SCHEMA_MANAGER.get_resource_schema(kit.REGION, resource_type).schema.get(
        "createOnlyProperties", [])
    return sorted({p.split("/")[2] for p in paths if p.startswith("/properties/")})


def parameters_in(node: Any, template: kit.Template, seen: Set[str] | None = None) -> Set[str]:
    """The parameters a template expression depends on: Ref, ${...} in Sub, the conditions of Fn::If (and the
    conditions those use), the keys of Fn::FindInMap."""
    seen = seen if seen is not None else set()
    params = set(template.get("Parameters", {}))
    out: Set[str] = set()
    if isinstance(node, list):
        for n in node:
            out |= parameters_in(n, template, seen)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in params:
                out.add(value)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                out |= {name for name in re.findall(r"\$\{([^}!.]+)\}", text) if name in params}
                if not isinstance(value, str):
                    out |= parameters_in(value[1], template, seen)
            elif key == "Fn::If":
                out |= condition_parameters(value[0], template, seen) | parameters_in(value[1:], template, seen)
            elif key == "Condition" and isinstance(value, str):
                out |= condition_parameters(value, template, seen)
            else:
                out |= parameters_in(value, template, seen)
    return out


def condition_parameters(name: str, template: kit.Template, seen: Set[str]) -> Set[str]:
    if name in seen:
        return set()
    seen.add(name)
    return parameters_in(template.get("Conditions", {}).get(name), template, seen)


def _policy_denies(policy: Dict[str, Any], action: str, logical: str) -> bool:
    for st in policy.get("Statement", []):
        if st.get("Effect") != "Deny":
            continue
        actions = st.get("Action", [])
        resources = st.get("Resource", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = resources if isinstance(resources, list) else [resources]
        if any(re.fullmatch(a.replace("*", ".*"), action) for a in actions) and any(
                re.fullmatch(r.replace("*", ".*"), f"LogicalResourceId/{logical}") for r in resources):
            return True
    return False


def stack_policy_problems(template: kit.Template, policy: Dict[str, Any]) -> List[str]:
    """Every parameter that can replace (or remove) the data's resources is answered by the stack policy."""
    p: List[str] = []
    for logical, r in template["Resources"].items():
        if r["Type"] not in DATA_TYPES:
            continue
        props = r.get("Properties", {})
        for prop in create_only(r["Type"]):
            reaching = parameters_in(props.get(prop), template)
            if reaching and not _policy_denies(policy, "Update:Replace", logical):
                p.append(f"{logical}.{prop} is create-only and {sorted(reaching)} reach it: a change replaces "
                         f"{logical} (an empty one), and the stack policy does not deny Update:Replace on it")
        if "Condition" in r:
            reaching = condition_parameters(r["Condition"], template, set())
            if reaching and not _policy_denies(policy, "Update:Delete", logical):
                p.append(f"{logical} exists only when {r['Condition']} ({sorted(reaching)}): a change removes it, and "
                         "the stack policy does not deny Update:Delete on it")
        if r.get("UpdateReplacePolicy") != "Retain" and r["Type"] == "AWS::EFS::FileSystem":
            p.append(f"{logical}: UpdateReplacePolicy is not Retain: a replacement would delete the data")
    return p


# ---------------------------------------------------------------- updates replace every instance, and wait

def _warm_params() -> Dict[str, str]:
    return {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "WarmPool": "true"}


def _code_calls(code: str) -> Dict[str, Dict[str, Any]]:
    """The boto3 calls in a function's inline code: {operation: its keyword arguments as far as literal}."""
    out: Dict[str, Dict[str, Any]] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            kwargs: Dict[str, Any] = {}
            for kw in node.keywords:
                try:
                    kwargs[str(kw.arg)] = ast.literal_eval(kw.value)
                except ValueError:
                    kwargs[str(kw.arg)] = None
            out.setdefault(node.func.attr, kwargs)
    return out


def warm_pool_problems(template: kit.Template) -> List[str]:
    """With a warm pool, an update replaces the warm instances too: a custom resource keyed on the launch
    template's version, whose function starts an instance refresh that skips the matching instances and never
    runs two, exists whenever the pool does."""
    res = network.Resolver(template, _warm_params())
    resources = res.resources()
    pools = [k for k, r in resources.items() if r["Type"] == "AWS::AutoScaling::WarmPool"]
    if not pools:
        return []
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    p: List[str] = []
    refreshers = []
    for logical, r in resources.items():
        if not (r["Type"].startswith("Custom::") or r["Type"] == "AWS::CloudFormation::CustomResource"):
            continue
        props = res.value(r.get("Properties", {}))
        token = props.get("ServiceToken")
        fn = functions.get(getattr(token, "logical", ""))
        if fn is None:
            continue
        calls = _code_calls(str(fn["Properties"].get("Code", {}).get("ZipFile", "")))
        if "start_instance_refresh" in calls:
            refreshers.append((logical, props, calls["start_instance_refresh"]))
    if not refreshers:
        return [f"a warm pool ({pools[0]}) but nothing refreshes it: CloudFormation's rolling update replaces "
                "InService instances only, and the next failover starts the old AMI's MQ on the new data"]
    for logical, props, call in refreshers:
        keyed = [v for v in props.values() if v == network.ResourceRef("LaunchTemplate", "LatestVersionNumber")]
        if not keyed:
            p.append(f"{logical} is not keyed on the launch template's version: an update never changes it, so it "
                     "never runs")
        prefs = call.get("Preferences") or {}
        if prefs.get("SkipMatching") is not True:
            p.append(f"{logical}: the refresh does not skip matching instances: it replaces the instance the rolling "
                     "update just made (a second outage)")
        if prefs.get("MaxHealthyPercentage", 100) > 100:
            p.append(f"{logical}: the refresh may launch before it terminates: two instances on one queue manager")
    return p


def _seconds(iso: str) -> int:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", iso)
    if not m:
        raise ValueError(f"not an ISO 8601 duration: {iso}")
    h, mi, s = (int(x or 0) for x in m.groups())
    return h * 3600 + mi * 60 + s


def signal_problems(template: kit.Template) -> List[str]:
    """The update and the first create wait for mqguard's signals, as long as the launch hook may take."""
    p: List[str] = []
    for mount in template["Parameters"]["MountTimeout"]["AllowedValues"]:
        for start in template["Parameters"]["StartTimeout"]["AllowedValues"]:
            for mode in ("single-instance", "multi-instance"):
                res = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR,
                                                  "MountTimeout": mount, "StartTimeout": start, "Mode": mode})
                for logical, r in res.resources().items():
                    if r["Type"] != "AWS::AutoScaling::AutoScalingGroup":
                        continue
                    props = res.value(r["Properties"])
                    hook = max([int(h.get("HeartbeatTimeout", 0)) for h in props.get("LifecycleHookSpecificationList", [])
                                if h.get("LifecycleTransition", "").endswith("LAUNCHING")] or [0])
                    rolling = res.value(r.get("UpdatePolicy", {})).get("AutoScalingRollingUpdate", {})
                    where = f"{logical} ({mode}, mount {mount}, start {start})"
                    if rolling.get("WaitOnResourceSignals") is not True:
                        p.append(f"{where}: the rolling update does not wait for signals: an AMI that never starts MQ "
                                 "replaces every instance")
                    elif _seconds(str(rolling.get("PauseTime", "PT0S"))) < hook:
                        p.append(f"{where}: the update waits {rolling.get('PauseTime')} for a signal, less than the "
                                 f"launch hook's {hook} s: a slow but good start fails the update")
                    creation = res.value(r.get("CreationPolicy", {})).get("ResourceSignal", {})
                    if int(creation.get("Count", 0)) != int(props["DesiredCapacity"]):
                        p.append(f"{where}: the first create waits for {creation.get('Count', 0)} signals, the group "
                                 f"has {props['DesiredCapacity']} instances")
                    elif _seconds(str(creation.get("Timeout", "PT0S"))) < hook:
                        p.append(f"{where}: the first create waits less than the launch hook")
                    if mount != template["Parameters"]["MountTimeout"]["AllowedValues"][0]:
                        continue
                    spread = props.get("AvailabilityZoneDistribution", {}).get("CapacityDistributionStrategy")
                    if spread != "balanced-best-effort":
                        p.append(f"{where}: CapacityDistributionStrategy {spread}: a launch that fails in one AZ is "
                                 "not tried in another")
                    impaired = props.get("AvailabilityZoneImpairmentPolicy", {})
                    if not (impaired.get("ZonalShiftEnabled") is True
                            and impaired.get("ImpairedZoneHealthCheckBehavior") == "ReplaceUnhealthy"):
                        p.append(f"{where}: no zonal shift replacing the impaired AZ's unhealthy instances")
    return p


# ---------------------------------------------------------------- the CloudWatch agent can work

def _imds_users_when_agent_on(hcl_text: str) -> List[str]:
    m = re.search(r'"IMDS_USERS=\$\{var\.cloudwatch_agent \? "([^"]*)" : "[^"]*"\}"', hcl_text)
    return m.group(1).split() if m else []


def agent_problems(template: kit.Template, configs: Iterable[Path] = AGENT_CONFIGS,
                   hcl_text: str | None = None) -> List[str]:
    """Every shipped agent configuration, run by the AMI with CloudWatchAgent=true, reaches what it needs."""
    hcl_text = hcl_text if hcl_text is not None else PACKER.read_text()
    p: List[str] = []
    res = network.Resolver(template, {"ImageId": "ami-0", "ClientCidr": kit.CLIENT_CIDR, "CloudWatchAgent": "true"})
    resources = res.resources()
    statements: List[Dict[str, Any]] = []
    for r in resources.values():
        props = res.value(r.get("Properties", {}))
        if r["Type"] == "AWS::IAM::Role" and "ec2.amazonaws.com" in json.dumps(props.get("AssumeRolePolicyDocument")):
            statements += [s for pol in props.get("Policies", []) for s in pol["PolicyDocument"]["Statement"]]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
            statements += props["PolicyDocument"]["Statement"]
    policy = {"Statement": statements}
    endpoints = {str(res.value(r["Properties"]).get("ServiceName", "")).rsplit(".", 1)[-1]
                 for r in resources.values() if r["Type"] == "AWS::EC2::VPCEndpoint"}
    user_data = json.dumps(res.value(template["Resources"]["LaunchTemplate"]["Properties"]), default=str)
    if "mqguard-cloudwatch-agent.service" not in user_data:
        p.append("CloudWatchAgent=true but user data never starts the agent")
    for path in configs:
        doc = json.loads(path.read_text())
        user = doc.get("agent", {}).get("run_as_user", "root")
        if user != "root" and user not in _imds_users_when_agent_on(hcl_text):
            p.append(f"{path.name}: the agent runs as {user}, which the AMI's IMDS firewall refuses (IMDS_USERS "
                     f"{_imds_users_when_agent_on(hcl_text)}): no credentials, nothing published")
        prom = doc.get("logs", {}).get("metrics_collected", {}).get("prometheus", {})
        group = prom.get("log_group_name", "")
        namespace = prom.get("emf_processor", {}).get("metric_namespace", "")
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            if group and not kit.allowed(policy, action, f"{ACCOUNT}:log-group:{group}:log-stream:x"):
                p.append(f"{path.name}: the instance role does not allow {action} into {group}")
        if group and not kit.allowed(policy, "logs:CreateLogGroup", f"{ACCOUNT}:log-group:{group}"):
            p.append(f"{path.name}: the instance role does not allow the agent to create {group}")
        if namespace and not kit.allowed(policy, "cloudwatch:PutMetricData", "*",
                                         context={"cloudwatch:namespace": [namespace]}):
            p.append(f"{path.name}: the instance role does not allow cloudwatch:PutMetricData in {namespace}")
        if prom and "logs" not in endpoints:
            p.append(f"{path.name}: a new VPC without a logs endpoint: the private subnets cannot reach CloudWatch Logs")
    if "monitoring" not in endpoints:
        p.append("a new VPC without a monitoring endpoint: the private subnets cannot reach CloudWatch")
    if "IMDS_USERS" not in FIREWALL_SCRIPT.read_text():
        p.append("45-imds-firewall.sh ignores IMDS_USERS: the agents' users are refused instance metadata")
    return p
