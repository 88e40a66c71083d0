"""Runs the preflight checks for a configuration (or for an image, before any configuration exists)."""

from __future__ import annotations

import os
from typing import List, Optional

from mqguard.base.exitcodes import EX_OK, EX_UNHEALTHY
from mqguard.config import Config
from mqguard.efs.storage import check_mount
from mqguard.mq.control import MqControl
from mqguard.mq.names import directory_name
from mqguard.preflight import checks
from mqguard.preflight.checks import FAIL, PASS, Finding, Host


def run_preflight(cfg: Optional[Config], host: Host, image: bool = False) -> List[Finding]:
    """Every check; ``image``: only what an AMI build can check (no mount, no queue manager yet)."""
    user = cfg.queue_manager.run_as if cfg is not None and cfg.queue_manager.run_as else "mqm"
    if cfg is None or image:
        return (checks.mq_user(user, host) + checks.mq_group_exists() + checks.kernel_params(host)
                + checks.units_installed(host) + checks.polkit_rule(host))
    qm, st = cfg.queue_manager, cfg.storage
    mounted = check_mount(st.path, st.fstypes, host.mountinfo).ok
    data = qm.data_dir if mounted and os.path.isdir(qm.data_dir) else None
    findings = checks.mq_user(user, host, data) + checks.mq_group_exists() + checks.kernel_params(host)
    findings += checks.unit_limits(qm.name, host)
    findings += checks.efs_mount(st.path, host)
    if mounted:
        owner = None
        try:
            pw = host.lookup_user(user)
            owner = (pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass
        findings += checks.setgid_directories(st.path, owner, user)
        findings += checks.amqmfsck(qm.mq_bin_dir, st.path, qm.multi_instance, host, user)
        findings += checks.lock_heartbeat(qm.data_dir, directory_name(qm.name), qm.file_lock_heartbeat_len,
                                          any(t.startswith("nfs") for t in st.fstypes))
    control = MqControl(qm, st.path, host.runner, cfg.health.command_timeout)
    findings += checks.mq_root(control.mq_root(), st.path, qm.multi_instance)  # None: dspmqver does not answer
    findings += checks.units_installed(host) + checks.polkit_rule(host)
    return findings


def render(findings: List[Finding]) -> str:
    fails = sum(f.verdict == FAIL for f in findings)
    warns = sum(f.verdict not in (PASS, FAIL) for f in findings)
    summary = (f"preflight: {len(findings)} checks, {fails} FAIL, {warns} WARN"
               + ("" if fails else " — this host is ready for IBM MQ with mqguard"))
    return "\n".join([str(f) for f in findings] + ["", summary])


def exit_code(findings: List[Finding]) -> int:
    return EX_UNHEALTHY if any(f.verdict == FAIL for f in findings) else EX_OK
