"""The configuration's schema: every section, key, default, parser and one-line help, in one table. The single
source of defaults: ``examples/mqguard.conf`` mirrors it (a test keeps the two in step), and so does
docs/reference.md (another test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from mqguard.config import nativeha
from mqguard.config.types import PcfMode, ReportMode, StopOnExit
from mqguard.config.values import (
    Parser,
    _abs_path,
    _asg_name,
    _cfn_resource,
    _cfn_stack,
    _choice,
    _crtmqm_options,
    _fstypes,
    _group,
    _hook_name,
    _int_range,
    _optional_abs_path,
    _optional_url,
    _patterns,
    _region,
    _required_qmgr_name,
    _show_list,
    _show_listen,
    _show_words,
    _unit,
    _url,
    _user,
    _words,
    duration,
    parse_bool,
    parse_listen,
)

HOUR, DAY = 3600.0, 86400.0


@dataclass(frozen=True)
class Option:
    default: str
    parse: Parser
    help: str
    show: Optional[Callable[[object], str]] = None


SCHEMA: Dict[str, Dict[str, Option]] = {
    "queue_manager": {
        "name": Option("", _required_qmgr_name, "REQUIRED. 1-48 chars of A-Z a-z 0-9 . / _ %"),
        "mq_bin_dir": Option("/opt/mqm/bin", _abs_path, "where the MQ control commands live"),
        "run_as": Option("mqm", _user, "user the MQ control commands run as; empty = mqguard's own"),
        "create": Option("true", parse_bool, "create the queue manager when no data exists anywhere"),
        "data_dir": Option("", _optional_abs_path, "crtmqm -md parent; empty: <storage.path>/qmgrs"),
        "log_dir": Option("", _optional_abs_path, "crtmqm -ld; empty: <storage.path>/logs"),
        "crtmqm_options": Option("", _crtmqm_options, "extra crtmqm arguments, shell-word split", _show_words),
        "mqsc_dir": Option("/etc/mqguard/mqsc.d", _abs_path, "*.mqsc applied after each start"),
        "listener_port": Option("1414", _int_range(0, 65535), "TCP port probed; 0 = no probe"),
        "multi_instance": Option("false", parse_bool, "strmqm -x; standby counts as healthy"),
        "start_timeout": Option("5m", duration(1, DAY), "longest a start may take"),
        "stop_timeout": Option("60s", duration(1, HOUR), "endmqm -w escalates after this"),
        "stop_on_exit": Option("auto", _choice(StopOnExit), "auto | always | never"),
        "unit": Option("auto", _unit, "systemd template the queue manager runs in (mq@.service); none = as a child"),
        "lock_wait": Option("3m", duration(0, HOUR), "how long 'running elsewhere' (a stale lock) is waited for"),
        "file_lock_heartbeat_len": Option("15", _int_range(0, 3600), "qm.ini TuningParameters FileLockHeartBeatLen "
                                          "given to crtmqm (IBM: at least 15 on EFS); 0 = MQ's default"),
        "ha": Option("", nativeha.parse_ha, "single | multi_instance | native_ha; empty: from multi_instance"),
        "instance_name": Option("", nativeha.parse_instance_name, "native_ha: this host's instance (crtmqm -lr)"),
    },
    "storage": {
        "path": Option("/var/mqm", _abs_path, "must be a mount point (the EFS mount)"),
        "fstypes": Option("nfs4", _fstypes, "accepted file-system types, comma-separated", _show_list),
        "mount_timeout": Option("10m", duration(1, DAY), "wait for the mount at start-up"),
        "probe_timeout": Option("5s", duration(0.1, 600), "a slower probe counts as bad"),
    },
    "health": {
        "poll_interval": Option("5s", duration(0.1, HOUR), "one supervision cycle"),
        "grace_period": Option("60s", duration(0, DAY), "how long a bad condition lasts before reporting"),
        "restart_attempts": Option("3", _int_range(0, 1000), "local strmqm attempts per bad episode"),
        "restart_limit": Option("6", _int_range(0, 1000), "local restarts allowed in any restart_window"),
        "restart_window": Option("1h", duration(60, 7 * DAY), "the window of restart_limit"),
        "command_timeout": Option("15s", duration(0.1, HOUR), "query commands slower than this are bad"),
        "report": Option("autoscaling", _choice(ReportMode), "autoscaling | log"),
        "respect_asg_grace_period": Option("true", parse_bool, "ShouldRespectGracePeriod"),
    },
    "aws": {
        "region": Option("", _region, "empty: from instance metadata"),
        "endpoint_url": Option("", _optional_url, "empty: the public regional endpoint"),
        "imds_url": Option("http://169.254.169.254", _url, "instance metadata service"),
        "termination_hook": Option("", _hook_name, "lifecycle hook on EC2_INSTANCE_TERMINATING"),
        "launch_hook": Option("", _hook_name, "lifecycle hook on EC2_INSTANCE_LAUNCHING"),
        "asg_name": Option("", _asg_name, "empty: looked up when a hook needs it"),
        "cfn_stack": Option("", _cfn_stack, "stack to signal when MQ first runs (SUCCESS) or cannot (FAILURE)"),
        "cfn_resource": Option("Group", _cfn_resource, "the group's logical id in that stack"),
    },
    "metrics": {
        "listen": Option("0.0.0.0:9157", parse_listen, "host:port or off", _show_listen),
        "pcf": Option("auto", _choice(PcfMode), "auto | on | off"),
        "queues": Option("*", _patterns, "queue-name patterns for per-queue metrics", _show_list),
    },
    "logging": {
        "level": Option("info", _words(["debug", "info", "warning", "error"]), "log level"),
        "format": Option("text", _words(["text", "json"]), "text | json"),
    },
    "control": {
        "socket": Option("/run/mqguard/mqguard.sock", _abs_path, "local control socket (pause, resume, switchover)"),
        "group": Option("mqm", _group, "group allowed to use the control socket (and root)"),
        "pause_max": Option("24h", duration(60, 7 * DAY), "the longest pause allowed"),
        "drill_interval": Option("5m", duration(0, DAY), "the least time between two drills"),
    },
    "native_ha": {
        "instances": Option("", nativeha.parse_instances, "the three instances: name=host(port), comma-separated",
                            nativeha.show_instances),
        "key_repository": Option("", _optional_abs_path, "TLS for replication: key repository stem; empty: plain"),
        "certificate_label": Option("", nativeha.parse_label, "TLS: the certificate's label (empty: MQ's default)"),
        "cipher_spec": Option("", nativeha.parse_cipher, "TLS: CipherSpec, e.g. ANY_TLS12_OR_HIGHER"),
        "heartbeat_interval": Option("5s", duration(0.5, 60), "HeartbeatInterval (IBM: 500 ms to 60 s)"),
        "heartbeat_timeout": Option("10s", duration(0.5, 120), "HeartbeatTimeout (at least the interval)"),
        "quorum_wait": Option("1h", duration(0, 2 * DAY), "ending would break quorum: wait this long for another "
                                                           "instance (the termination hook is heart-beaten)"),
    },
    "hooks": {
        "on_state_change": Option("", _optional_abs_path, "program run on each state change; empty = none"),
        "timeout": Option("30s", duration(1, HOUR), "a hook still running after this is killed"),
        "pass_aws_credentials": Option("false", parse_bool, "give hooks mqguard's static AWS_* credentials"),
    },
}
