"""The template's network as flows between security groups, checked in both directions.

moto neither enforces security groups nor implements AWS::EC2::SecurityGroupEgress, so
the network is checked here, on the template itself: a small evaluator of the intrinsic
functions the template uses resolves it for one set of parameters (new VPC or existing),
finds which security groups sit on the load balancer, the instances, the EFS mount targets
and the VPC endpoints by where they are attached (not by their names), and then asks for
every flow mqguard, MQ and EFS need: the source's egress and the destination's ingress
must both allow it. It also forbids the flows that would bypass the load balancer's
``/active`` or expose NFS.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

Template = Dict[str, Any]
NOVALUE = object()
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "stack",
          "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


@dataclass(frozen=True)
class ResourceRef:
    logical: str
    attribute: str = ""


class Resolver:
    """Conditions and intrinsic functions of one template for one set of parameter values."""

    def __init__(self, template: Template, params: Dict[str, str]) -> None:
        self.t = template
        self.params: Dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            raw = params.get(name, spec.get("Default"))
            if raw is None:
                raise ValueError(f"parameter {name} has no default and no value")
            # as CloudFormation: an empty list parameter is [""], not [] (the Rules rely on it)
            self.params[name] = str(raw).split(",") if spec.get("Type") == "CommaDelimitedList" else str(raw)
        self._conditions: Dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self._conditions[name]

    def resources(self) -> Dict[str, Dict[str, Any]]:
        return {k: r for k, r in self.t["Resources"].items() if "Condition" not in r or self.condition(r["Condition"])}

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self.value(n) for n in node]
            return [v for v in out if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NOVALUE}
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return NOVALUE
            if arg in self.params:
                return self.params[arg]
            if arg in PSEUDO:
                return PSEUDO[arg]
            return ResourceRef(arg)
        if fn == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else arg
            return ResourceRef(parts[0], parts[1])
        if fn == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x) for x in arg)
        if fn == "Fn::Select":
            items = self.value(arg[1])
            return items[int(self.value(arg[0]))]
        if fn == "Fn::Split":
            return str(self.value(arg[1])).split(arg[0])
        if fn == "Fn::FindInMap":
            m, k1, k2 = (self.value(x) for x in arg)
            return self.t["Mappings"][m][str(k1)][str(k2)]
        if fn == "Fn::Sub":
            text, env = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))
            for key, val in list(env.items()) + [(k, v) for k, v in self.params.items()] + list(PSEUDO.items()):
                text = text.replace("${" + key + "}", str(val))
            return text
        if fn == "Fn::Contains":
            items, wanted = self.value(arg[0]), self.value(arg[1])
            return wanted in items
        if fn == "Fn::GetAZs":
            return ["us-east-1a", "us-east-1b", "us-east-1c"]
        return {fn: self.value(arg)}


# ---------------------------------------------------------------- rules and flows

Peer = Tuple[str, str]  # ("sg", logical id or external sg-id) | ("cidr", "10.0.0.0/8")


@dataclass(frozen=True)
class Rule:
    group: str
    direction: str  # "in" | "out"
    protocol: str
    from_port: int
    to_port: int
    peer: Peer

    def covers_port(self, port: int) -> bool:
        return self.protocol == "-1" or (self.protocol in ("tcp", "6") and self.from_port <= port <= self.to_port)


def _peer(rule: Dict[str, Any], direction: str) -> Optional[Peer]:
    key = "SourceSecurityGroupId" if direction == "in" else "DestinationSecurityGroupId"
    group = rule.get(key)
    if group is not None:
        return ("sg", group.logical if isinstance(group, ResourceRef) else str(group))
    for cidr_key in ("CidrIp", "CidrIpv6"):
        if rule.get(cidr_key):
            return ("cidr", str(rule[cidr_key]))
    return None


def _rule(group: str, direction: str, spec: Dict[str, Any]) -> Optional[Rule]:
    peer = _peer(spec, direction)
    if peer is None:
        return None
    proto = str(spec.get("IpProtocol", "-1"))
    return Rule(group, direction, proto, int(spec.get("FromPort", 0) if proto != "-1" else 0),
                int(spec.get("ToPort", 65535) if proto != "-1" else 65535), peer)


def _group_of(value: Any) -> str:
    return value.logical if isinstance(value, ResourceRef) else str(value)


def rules(res: Resolver) -> List[Rule]:
    """Every ingress and egress rule, with AWS's default allow-all egress where it still applies."""
    out: List[Rule] = []
    resources = res.resources()
    for logical, r in resources.items():
        props = res.value(r.get("Properties", {}))
        if r["Type"] == "AWS::EC2::SecurityGroup":
            for spec in props.get("SecurityGroupIngress", []):
                out += [x for x in [_rule(logical, "in", spec)] if x]
            egress = props.get("SecurityGroupEgress")
            if not egress:  # only an inline egress rule removes the default
                out.append(Rule(logical, "out", "-1", 0, 65535, ("cidr", "0.0.0.0/0")))
            for spec in egress or []:
                out += [x for x in [_rule(logical, "out", spec)] if x]
        elif r["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            direction = "in" if r["Type"].endswith("Ingress") else "out"
            out += [x for x in [_rule(_group_of(props["GroupId"]), direction, props)] if x]
    return out


def attachments(res: Resolver) -> Dict[str, Set[str]]:
    """Which security groups sit on what, found by where they are attached."""
    where: Dict[str, Set[str]] = {"lb": set(), "instance": set(), "efs": set(), "endpoint": set()}
    for r in res.resources().values():
        props = res.value(r.get("Properties", {}))
        if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            where["lb"] |= {_group_of(g) for g in props.get("SecurityGroups", [])}
        elif r["Type"] == "AWS::EC2::LaunchTemplate":
            where["instance"] |= {_group_of(g) for g in props["LaunchTemplateData"].get("SecurityGroupIds", [])}
        elif r["Type"] == "AWS::EFS::MountTarget":
            where["efs"] |= {_group_of(g) for g in props.get("SecurityGroups", [])}
        elif r["Type"] == "AWS::EC2::VPCEndpoint":
            where["endpoint"] |= {_group_of(g) for g in props.get("SecurityGroupIds", [])}
    return where


def _cidr_covers(cidr: str, what: str) -> bool:
    try:
        return ipaddress.ip_network(what, strict=False).subnet_of(ipaddress.ip_network(cidr, strict=False))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


class Network:
    def __init__(self, template: Template, params: Dict[str, str]) -> None:
        self.res = Resolver(template, params)
        self.rules = rules(self.res)
        self.at = attachments(self.res)
        tg = next((self.res.value(r["Properties"]) for r in self.res.resources().values()
                   if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"), {})
        self.mq_port = int(tg.get("Port", 1414))
        self.health_port = int(tg.get("HealthCheckPort", 9157))

    def _allows(self, direction: str, groups: Iterable[str], port: int, peers: Set[str], cidr: str = "") -> bool:
        """Whether a rule of ``groups`` in ``direction`` lets ``port`` through to/from the peer groups or range.
        Out: 0.0.0.0/0 reaches anything; in: a range admits the peer range only if it contains it."""
        for r in self.rules:
            if r.direction != direction or r.group not in set(groups) or not r.covers_port(port):
                continue
            kind, peer = r.peer
            if kind == "sg" and peer in peers:
                return True
            if kind == "cidr" and ((direction == "out" and peer == "0.0.0.0/0") or (cidr and _cidr_covers(peer, cidr))):
                return True
        return False

    def flow(self, src: str, dst: str, port: int) -> List[str]:
        """Problems with the flow src -> dst on port; src/dst: a role, or 'cidr:<range>'."""
        p: List[str] = []
        src_groups = self.at.get(src, set())
        dst_groups = self.at.get(dst, set())
        src_cidr = src[5:] if src.startswith("cidr:") else ""
        dst_cidr = dst[5:] if dst.startswith("cidr:") else ""
        if src.startswith("sg:"):
            src_groups = {src[3:]}
        if not src_cidr and not src.startswith("sg:") and not self._allows("out", src_groups, port, dst_groups, dst_cidr):
            p.append(f"{src} -> {dst} on {port}: no egress rule on {src}'s security group allows it")
        if not dst_cidr and not self._allows("in", dst_groups, port, src_groups, src_cidr):
            p.append(f"{src} -> {dst} on {port}: no ingress rule on {dst}'s security group allows it")
        return p

    def problems(self) -> List[str]:
        p: List[str] = []
        for role in ("lb", "instance", "efs"):
            if not self.at[role]:
                p.append(f"no security group on the {role}: nothing can be admitted from it by name")
        params = self.res.params
        p += self.flow(f"cidr:{params['ClientCidr']}", "lb", self.mq_port)
        p += self.flow("lb", "instance", self.mq_port)
        p += self.flow("lb", "instance", self.health_port)
        p += self.flow("instance", "instance", self.mq_port)
        p += self.flow("instance", "instance", self.health_port)  # a pair's mqguards ask each other of the storage
        p += self.flow("instance", "efs", 2049)
        p += self.flow("instance", "cidr:0.0.0.0/0", 443) if not self.at["endpoint"] else (
            self.flow("instance", "endpoint", 443))
        if params.get("MonitoringSecurityGroupId"):
            p += self.flow(f"sg:{params['MonitoringSecurityGroupId']}", "instance", self.health_port)
        if params.get("MqPeerCidr"):
            low, high = (int(x) for x in params["MqPeerPorts"].split("-"))
            for port in {low, high}:
                p += self.flow("instance", f"cidr:{params['MqPeerCidr']}", port)
        if params.get("LdapCidr"):
            for port in (389, 636):
                p += self.flow("instance", f"cidr:{params['LdapCidr']}", port)
        p += self._forbidden()
        p += self.subnet_problems()
        return p

    def subnet_problems(self) -> List[str]:
        """The group launches, the load balancer serves and EFS is mounted in the SAME subnets: an AZ where the
        group may launch but no mount target is can never mount the queue manager's data."""
        where: Dict[str, Set[str]] = {}
        for logical, r in self.res.resources().items():
            props = self.res.value(r.get("Properties", {}))
            if r["Type"] == "AWS::AutoScaling::AutoScalingGroup":
                where[f"group {logical}"] = {_group_of(s) for s in props.get("VPCZoneIdentifier", [])}
            elif r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer":
                where[f"load balancer {logical}"] = {_group_of(s) for s in props.get("Subnets", [])}
            elif r["Type"] == "AWS::EFS::MountTarget":
                where.setdefault("the mount targets", set()).add(_group_of(props.get("SubnetId")))
        mounts = where.pop("the mount targets", set())
        return [f"{what} uses subnets {sorted(subnets)}, the mount targets {sorted(mounts)}"
                for what, subnets in where.items() if subnets != mounts]

    def _forbidden(self) -> List[str]:
        p = []
        for r in self.rules:
            if r.direction != "in" or r.peer[0] != "cidr":
                continue
            if r.group in self.at["instance"] and (r.covers_port(self.mq_port) or r.covers_port(self.health_port)):
                p.append(f"the instances admit {r.peer[1]} on {r.from_port}-{r.to_port} directly: clients and "
                         "scrapers must come through the load balancer or a named security group")
            if r.group in self.at["efs"]:
                p.append(f"EFS admits the address range {r.peer[1]}")
            if r.group in self.at["lb"] and r.peer[1] in ("0.0.0.0/0", "::/0"):
                p.append("the load balancer admits the whole internet")
        return p


def rule_problems(template: Template, params: Dict[str, str]) -> List[str]:
    """The template's Rules for one set of parameters, as CloudFormation checks them before it creates anything:
    the description of every assertion that fails."""
    res = Resolver(template, params)
    out: List[str] = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not res.value(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not res.value(assertion["Assert"]):
                out.append(f"{name}: {assertion.get('AssertDescription', 'an assertion fails')}")
    return out


def depends_on(template: Template, src: str, dst: str) -> bool:
    """Whether resource ``src`` waits for ``dst`` (DependsOn, Ref or GetAtt anywhere in it, transitively)."""
    seen: Set[str] = set()
    todo = [src]
    while todo:
        name = todo.pop()
        if name in seen or name not in template["Resources"]:
            continue
        seen.add(name)
        r = template["Resources"][name]
        deps = r.get("DependsOn", [])
        todo += [deps] if isinstance(deps, str) else list(deps)
        todo += _references(r)
    return dst in seen - {src}


def _references(node: Any) -> List[str]:
    out: List[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.append(v)
            elif k == "Fn::GetAtt":
                out.append(v.split(".")[0] if isinstance(v, str) else v[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out += [ref.split(".")[0] for ref in _sub_refs(text)]
                if not isinstance(v, str):
                    out += _references(v[1])
            else:
                out += _references(v)
    elif isinstance(node, list):
        for v in node:
            out += _references(v)
    return out


def _sub_refs(text: str) -> List[str]:
    out, i = [], 0
    while True:
        i = text.find("${", i)
        if i < 0:
            return out
        j = text.find("}", i)
        out.append(text[i + 2:j])
        i = j


def template_problems(template: Template) -> List[str]:
    """What the group needs from the template that moto cannot show."""
    p: List[str] = []
    resources = template["Resources"]
    groups = [k for k, r in resources.items() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    targets = [k for k, r in resources.items() if r["Type"] == "AWS::EFS::MountTarget"]
    for g in groups:
        for mt in targets:
            if not depends_on(template, g, mt):
                p.append(f"the group {g} does not wait for {mt}: an instance in that AZ may boot before the "
                         "file system's name resolves there")
        props = resources[g]["Properties"]
        hooks = props.get("LifecycleHookSpecificationList", [])
        grace = props.get("HealthCheckGracePeriod", 0)
        if any(h.get("LifecycleTransition") == "autoscaling:EC2_INSTANCE_LAUNCHING" for h in hooks) and grace != 0:
            p.append(f"HealthCheckGracePeriod {grace} with a launch hook: AWS refuses mqguard's report "
                     "(ValidationError) for that long after the instance is InService")
        rolling = resources[g].get("UpdatePolicy", {}).get("AutoScalingRollingUpdate")
        if not rolling:
            p.append(f"the group {g} has no rolling-update policy: a new AMI never reaches running instances")
        elif rolling.get("MaxBatchSize") != 1:
            p.append(f"the group {g} replaces {rolling.get('MaxBatchSize')} instances at a time: one queue manager "
                     "is replaced one instance at a time")
    p += root_device_problems(template)
    for name, r in resources.items():
        if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            for attr in r["Properties"].get("LoadBalancerAttributes", []):
                if attr["Key"] == "deletion_protection.enabled" and attr["Value"] == "true":
                    p.append(f"{name}: deletion protection always on: a failed first deploy ends in "
                             "ROLLBACK_FAILED (make it a parameter, off by default)")
        if r["Type"] == "AWS::EFS::FileSystem" and r.get("DeletionPolicy") == "Retain":
            p.append(f"{name}: DeletionPolicy Retain also keeps the file system of a first deploy that failed "
                     "(RetainExceptOnCreate does not)")
    return p


# the root device each supported base boots from (AMI's RootDeviceName)
ROOT_DEVICE = {"al2023": "/dev/xvda", "rhel9": "/dev/sda1"}


def root_device_problems(template: Template) -> List[str]:
    """For every base the template accepts, the launch template maps (and encrypts) that base's root device."""
    p: List[str] = []
    for base in ROOT_DEVICE:  # the AMI recipe's bases (a test keeps the two lists the same)
        res = Resolver(template, {"ImageBase": base, "ImageId": "ami-0", "ClientCidr": "10.20.0.0/16"})
        for r in res.resources().values():
            if r["Type"] != "AWS::EC2::LaunchTemplate":
                continue
            data = res.value(r["Properties"])["LaunchTemplateData"]
            names = [m.get("DeviceName") for m in data.get("BlockDeviceMappings", [])]
            if ROOT_DEVICE.get(base) not in names:
                p.append(f"ImageBase {base}: the launch template maps {names}, but {base} boots from "
                         f"{ROOT_DEVICE.get(base)} (its root volume would not get the template's size and encryption)")
    return p
