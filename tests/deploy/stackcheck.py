"""What the stack writes onto its instances must agree with the stack itself.

Checked on a stack deployed into moto, through the services' APIs and the rendered user
data: every value the user data gives mqguard (group, hook names, mount point and file
system type, the port the load balancer asks, the MQ port it forwards, the group's size)
is compared with what the stack made; every file system mounted in the user data is
mounted by something that retries and is ordered before MQ's units; and the file system's
policy is compared with the parsed mount options.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

# what `findmnt` shows for a file system mounted with each fstab type (efs-utils mounts NFS 4.1)
KERNEL_FSTYPE = {"efs": "nfs4", "nfs4": "nfs4", "nfs": "nfs"}
MQ_UNITS = ("mq@.service", "mq-prepare@.service")


@dataclass(frozen=True)
class FstabLine:
    source: str
    mount_point: str
    fstype: str
    options: List[str]

    def option(self, name: str) -> Optional[str]:
        """The value of ``name=value``, "" for a bare flag, None when absent."""
        for opt in self.options:
            key, _, value = opt.partition("=")
            if key == name:
                return value
        return None


def parse_user_data(user_data: str) -> Dict[str, Any]:
    doc = yaml.safe_load(user_data)
    return doc if isinstance(doc, dict) else {}


def fstab_lines(doc: Dict[str, Any]) -> List[FstabLine]:
    out = []
    for m in doc.get("mounts", []) or []:
        if isinstance(m, list) and len(m) >= 4:
            out.append(FstabLine(str(m[0]), str(m[1]), str(m[2]), [o for o in str(m[3]).split(",") if o]))
    return out


def files(doc: Dict[str, Any]) -> Dict[str, str]:
    return {str(f["path"]): str(f.get("content", "")) for f in doc.get("write_files", []) or []}


def unit_settings(text: str) -> Dict[str, List[str]]:
    """A systemd unit's settings, every value of each key in order (sections folded)."""
    out: Dict[str, List[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def mqguard_config(doc: Dict[str, Any]) -> Any:
    """mqguard's effective configuration from the files user data writes under /etc/mqguard."""
    from mqguard.config import load

    tmp = Path(tempfile.mkdtemp(prefix="mqguard-stack-conf-"))
    (tmp / "conf.d").mkdir()
    main = tmp / "mqguard.conf"
    main.write_text("")
    for path, content in files(doc).items():
        if path == "/etc/mqguard/mqguard.conf":
            main.write_text(content)
        elif path.startswith("/etc/mqguard/conf.d/") and path.endswith(".conf"):
            (tmp / "conf.d" / Path(path).name).write_text(content)
    return load(str(main))


def config_problems(d: Any) -> List[str]:
    """mqguard's configuration against the deployed group, hooks, load balancer and mounts."""
    doc = parse_user_data(d.user_data())
    try:
        cfg = mqguard_config(doc)
    except Exception as exc:  # ConfigError: already a problem of its own
        return [f"mqguard's configuration from user data does not load: {str(exc)[:300]}"]
    p: List[str] = []
    g = d.group()
    if cfg.aws.asg_name and cfg.aws.asg_name != g["AutoScalingGroupName"]:
        p.append(f"asg_name {cfg.aws.asg_name!r} but the group is {g['AutoScalingGroupName']!r}")
    hooks = {h["LifecycleHookName"]: h["LifecycleTransition"] for h in d.client("autoscaling").describe_lifecycle_hooks(
        AutoScalingGroupName=g["AutoScalingGroupName"])["LifecycleHooks"]}
    for key, transition in (("launch_hook", "autoscaling:EC2_INSTANCE_LAUNCHING"),
                            ("termination_hook", "autoscaling:EC2_INSTANCE_TERMINATING")):
        name = getattr(cfg.aws, key)
        if name and hooks.get(name) != transition:
            p.append(f"{key} {name!r} is not a {transition.split(':')[1]} hook of the group (it has {hooks})")
        if not name and transition in hooks.values():
            p.append(f"the group has a {transition.split(':')[1]} hook but mqguard's {key} is not set: "
                     "nobody completes it")
    if cfg.health.report.value != "autoscaling":
        p.append(f"health.report is {cfg.health.report.value}: the group never hears of a failure")
    p += _storage_problems(cfg, fstab_lines(doc))
    size = int(g["DesiredCapacity"])
    if cfg.queue_manager.multi_instance != (size == 2):
        p.append(f"multi_instance = {cfg.queue_manager.multi_instance} in a group of {size}")
    p += _load_balancer_problems(d, g, cfg)
    return p


def _storage_problems(cfg: Any, mounts: List[FstabLine]) -> List[str]:
    line = next((m for m in mounts if m.mount_point == cfg.storage.path), None)
    if line is None:
        return [f"storage.path {cfg.storage.path} is not a mount point in user data ({[m.mount_point for m in mounts]})"]
    kernel = KERNEL_FSTYPE.get(line.fstype, line.fstype)
    if kernel not in cfg.storage.fstypes:
        return [f"storage.fstypes {list(cfg.storage.fstypes)} but {line.mount_point} is mounted as {line.fstype} "
                f"(the kernel shows {kernel}): mqguard would wait for the mount forever"]
    return []


def _load_balancer_problems(d: Any, g: Dict[str, Any], cfg: Any) -> List[str]:
    elb = d.client("elbv2")
    p: List[str] = []
    for tg in elb.describe_target_groups(TargetGroupArns=g["TargetGroupARNs"])["TargetGroups"]:
        if cfg.metrics.listen is None:
            p.append("metrics.listen is off: the load balancer's health check gets no answer")
            continue
        host, port = cfg.metrics.listen
        if host in ("127.0.0.1", "::1", "localhost"):
            p.append(f"metrics.listen {host}:{port} answers only on loopback: the load balancer cannot reach it")
        if str(port) != str(tg["HealthCheckPort"]):
            p.append(f"metrics.listen port {port} but the load balancer asks {tg['HealthCheckPort']}")
        if int(tg["Port"]) != cfg.queue_manager.listener_port:
            p.append(f"the load balancer forwards to {tg['Port']} but the listener is on "
                     f"{cfg.queue_manager.listener_port}")
    return p


def mount_problems(user_data: str) -> List[str]:
    """Every mount: tried until it works (not once by cloud-init), and ordered before MQ's units."""
    doc = parse_user_data(user_data)
    written = files(doc)
    units = {Path(path).name: unit_settings(text) for path, text in written.items()
             if path.startswith("/etc/systemd/system/") and path.endswith(".service")}
    dropins: Dict[str, Dict[str, List[str]]] = {}
    for path, text in written.items():
        m = re.match(r"/etc/systemd/system/([^/]+)\.d/[^/]+\.conf$", path)
        if m:
            for key, values in unit_settings(text).items():
                dropins.setdefault(m.group(1), {}).setdefault(key, []).extend(values)
    runcmd = [" ".join(str(x) for x in c) if isinstance(c, list) else str(c) for c in doc.get("runcmd", []) or []]
    p: List[str] = []
    for line in fstab_lines(doc):
        mp = line.mount_point
        retrying = [name for name, s in units.items()
                    if any(mp in v.split() for v in s.get("ExecStart", []))
                    and s.get("Restart", ["no"])[-1] in ("on-failure", "always")
                    and s.get("StartLimitIntervalSec", ["10s"])[-1] in ("0", "infinity")]
        if not retrying:
            p.append(f"{mp}: nothing mounts it with retries (cloud-init's mount -a tries once)")
        elif line.option("noauto") is None:
            p.append(f"{mp}: not noauto, so boot and cloud-init also mount it once, racing the retrying unit")
        for name in retrying:
            if not any(name in c and "enable" in c for c in runcmd):
                p.append(f"{mp}: {name} is never enabled")
        if line.option("nofail") is None:
            p.append(f"{mp}: no nofail - a failed mount may hold up the boot")
        for unit in MQ_UNITS:
            covered = [v for v in dropins.get(unit, {}).get("RequiresMountsFor", []) for v in v.split()
                       if mp == v or mp.startswith(v.rstrip("/") + "/")]
            if not covered:
                p.append(f"{mp}: {unit} has no RequiresMountsFor for it (MQ could start, or EFS go, out of order)")
    enable = [i for i, c in enumerate(runcmd) if "mqguard.service" in c and "enable" in c]
    reload_ = [i for i, c in enumerate(runcmd) if "daemon-reload" in c]
    if not enable:
        p.append("user data never enables mqguard (the AMI installs it disabled)")
    elif not reload_ or reload_[0] > enable[0]:
        p.append("mqguard is started before systemd reloads the units and drop-ins user data wrote")
    return p


ROOT_UNIT_USERS = {"mq@.service": "mqm", "mq-prepare@.service": "mqm", "mqguard.service": "mqm"}  # the RPM's units


def root_step_problems(user_data: str) -> List[str]:
    """No command systemd runs as root may name a path BELOW a mount point of the shared storage: the MQ user
    and every writer of the EFS control what is there (a symlink planted at /MQHA/qmgrs made root chown
    /usr/bin to mqm). The mount point itself is the file system's root inode, which no writer can replace."""
    doc = parse_user_data(user_data)
    shared = [m.mount_point.rstrip("/") for m in fstab_lines(doc)]
    p: List[str] = []
    for path, text in files(doc).items():
        m = re.match(r"/etc/systemd/system/([^/]+?)(\.d/[^/]+\.conf)?$", path)
        if m is None:
            continue
        unit = m.group(1)
        settings = unit_settings(text)
        user = (settings.get("User") or [ROOT_UNIT_USERS.get(unit, "root")])[-1]
        for key, values in settings.items():
            if not key.startswith("Exec"):
                continue
            for value in values:
                as_root = user in ("root", "0") or value.lstrip("-@:!").startswith("+")
                below = [mp for mp in shared for word in value.split() if word.startswith(mp + "/")]
                if as_root and below:
                    p.append(f"{path}: {key}={value} runs as root on a path below {below[0]} (the shared storage: "
                             "whoever writes it controls what root follows there)")
    return p


def efs_policy_problems(d: Any) -> List[str]:
    """The file system's policy against the mount options (parsed, not matched as text)."""
    efs = d.client("efs")
    fs_id = d.outputs["FileSystemId"]
    try:
        doc = json.loads(efs.describe_file_system_policy(FileSystemId=fs_id)["Policy"])
    except efs.exceptions.PolicyNotFound:
        doc = {"Statement": []}
    statements = doc.get("Statement", [])
    mounts = [m for m in fstab_lines(parse_user_data(d.user_data())) if m.source.startswith(fs_id)]
    p: List[str] = []
    if not mounts:
        return [f"user data does not mount the stack's file system {fs_id}"]
    denies_plain = any(st.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(st.get("Condition", {}))
                       for st in statements)
    needs_access_point = any(st.get("Effect") == "Deny" and "elasticfilesystem:AccessPointArn" in json.dumps(
        st.get("Condition", {})) for st in statements)
    grants_root = any(st.get("Effect") == "Allow" and "ClientRootAccess" in json.dumps(st.get("Action", ""))
                      for st in statements)
    described = efs.describe_access_points(FileSystemId=fs_id)["AccessPoints"]
    access_points = {a["AccessPointId"] for a in described}
    for a in described:
        if a.get("PosixUser"):
            p.append(f"access point {a['AccessPointId']} sets a POSIX user ({a['PosixUser'].get('Uid')}): EFS then "
                     "takes every operation through it as that user, so any local account reads the queue manager's "
                     "data and can write qm.ini")
    for m in mounts:
        tls = m.fstype == "efs" and m.option("tls") is not None
        if denies_plain and not tls:
            p.append(f"the file-system policy requires TLS but {m.mount_point} mounts {m.fstype} "
                     f"{','.join(m.options)}: the instances cannot mount")
        if m.fstype == "efs" and m.option("iam") is None and statements:
            p.append(f"{m.mount_point} mounts without iam: the policy's grants to the instance role never apply")
        ap = m.option("accesspoint")
        if needs_access_point and not ap:
            p.append(f"the policy refuses mounts without an access point but {m.mount_point} names none")
        if ap and ap not in access_points:
            p.append(f"{m.mount_point} names access point {ap}, which is not one of {fs_id}'s")
        if tls and not denies_plain:
            p.append("TLS mounts but no file-system policy refusing plain NFS: anyone in reach may mount unencrypted")
    if grants_root:
        p.append("the file-system policy grants ClientRootAccess: root on any instance is root on the shared EFS")
    return p
