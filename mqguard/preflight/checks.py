"""The preflight checks: each looks at one thing and says PASS, WARN or FAIL, with the fix.

Pure but for the reads each one names; paths (``/proc/sys``, mountinfo, unit
and polkit directories) are parameters so tests can present a good or a bad
host. Nothing here changes the host, except a directory made and removed on
the shared storage to prove MQ's setgid directories can be made there.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mqguard.base.privileges import as_user
from mqguard.base.runner import CommandRunner, RunAs
from mqguard.efs.storage import MOUNTINFO, find_mount
from mqguard.mq.unit import PREPARE_TEMPLATE, TEMPLATE, UNIT_DIRS
from mqguard.preflight import kernel

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
POLKIT_DIRS = ("/usr/share/polkit-1/rules.d", "/etc/polkit-1/rules.d")
POLKIT_RULE = "50-mqguard.rules"
MIN_NOFILE, MIN_NPROC = 10240, 4096  # IBM's minimums for the queue manager's processes
EFS_OPTIONS = (("vers", "4.1"), ("hard", None), ("timeo", "600"), ("retrans", "2"), ("noresvport", None),
               ("nodev", None), ("nosuid", None))  # the last two: a writer of EFS plants no devices or setuid files


@dataclass(frozen=True)
class Finding:
    check: str
    verdict: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f"\n{'':22}fix: {self.fix}" if self.fix and self.verdict != PASS else ""
        return f"{self.verdict:<5} {self.check:<16} {self.detail}{fix}"


@dataclass
class Host:
    """Where the checks look; every path can be replaced for a test."""

    proc_sys: str = kernel.PROC_SYS
    mountinfo: str = MOUNTINFO
    unit_dirs: Sequence[str] = UNIT_DIRS
    polkit_dirs: Sequence[str] = POLKIT_DIRS
    runner: CommandRunner = field(default_factory=CommandRunner)
    lookup_user: Callable[[str], pwd.struct_passwd] = pwd.getpwnam


def mq_user(user: str, host: Host, data_dir: Optional[str] = None) -> List[Finding]:
    """The MQ user: it exists, its UID/GID are below 1000, and it owns the queue manager's data on EFS."""
    try:
        pw = host.lookup_user(user)
    except KeyError:
        return [Finding("mqm user", FAIL, f"no user {user}", "install IBM MQ (its installer creates mqm), or create "
                        "mqm with the UID/GID every host of this file system uses")]
    out = []
    if pw.pw_uid >= 1000 or pw.pw_gid >= 1000:
        out.append(Finding("mqm user", WARN, f"{user} is uid {pw.pw_uid} gid {pw.pw_gid} (1000 or more)",
                           "use a system UID/GID below 1000 (the AMI's mqm_uid/mqm_gid): logind's RemoveIPC= may "
                           "remove MQ's shared memory when a session of a regular user ends"))
    else:
        out.append(Finding("mqm user", PASS, f"{user} is uid {pw.pw_uid} gid {pw.pw_gid}"))
    if data_dir:
        try:
            st = os.stat(data_dir)
        except OSError as exc:
            out.append(Finding("data owner", WARN, f"cannot stat {data_dir}: {exc.strerror} (no data yet?)"))
        else:
            if (st.st_uid, st.st_gid) != (pw.pw_uid, pw.pw_gid):
                out.append(Finding("data owner", FAIL, f"{data_dir} belongs to uid {st.st_uid} gid {st.st_gid}, "
                                   f"but {user} here is {pw.pw_uid}:{pw.pw_gid}",
                                   "give mqm the same UID and GID on every host that mounts this file system "
                                   "(IBM: essential for multi-instance); rebuild the AMI with mqm_uid/mqm_gid"))
            else:
                out.append(Finding("data owner", PASS, f"{data_dir} belongs to {user} ({st.st_uid}:{st.st_gid})"))
    return out


def kernel_params(host: Host) -> List[Finding]:
    out = []
    for r in kernel.readings(host.proc_sys):
        shown = " ".join(map(str, r.current)) if r.current is not None else "unreadable"
        want = " ".join(map(str, r.param.want))
        if r.ok:
            out.append(Finding(r.param.key, PASS, f"{shown} ({'at most' if r.param.maximum else 'at least'} {want})"))
        else:
            verdict = WARN if r.param.advice else FAIL
            out.append(Finding(r.param.key, verdict, f"{shown}, IBM's {'maximum' if r.param.maximum else 'minimum'} "
                               f"is {want}", f"sysctl -w {r.param.key}='{' '.join(map(str, r.target))}' and keep it in "
                               "/etc/sysctl.d (mqguard preflight --write-sysctl FILE writes only what is short)"))
    return out


def unit_limits(qmgr: str, host: Host) -> List[Finding]:
    """The limits systemd gives the queue manager's unit (mq@NAME.service)."""
    from mqguard.mq.unit import escape_instance

    unit = f"mq@{escape_instance(qmgr)}.service"
    res = host.runner.run(["systemctl", "show", unit, "-p", "LimitNOFILE,LimitNPROC"], 10, env={})
    if not res.ok():
        return [Finding("unit limits", WARN, f"cannot ask systemd about {unit}: {res.outcome}")]
    props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    out = []
    for key, minimum in (("LimitNOFILE", MIN_NOFILE), ("LimitNPROC", MIN_NPROC)):
        value = props.get(key, "")
        ok = value == "infinity" or (value.isdigit() and int(value) >= minimum)
        out.append(Finding(f"{unit} {key}", PASS if ok else FAIL, f"{value or 'unset'} (IBM: at least {minimum})",
                           f"systemctl edit mq@ and set {key}={minimum}"))
    return out


def _options(text: str) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        out[key] = value or None
    return out


def efs_mount(path: str, host: Host) -> List[Finding]:
    """nfs4 with vers=4.1, hard, timeo=600, retrans=2, noresvport (AWS's recommended options), or efs-utils' TLS."""
    try:
        entry = find_mount(path, host.mountinfo)
        with open(host.mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = [line for line in fh if f" {path} " in line]
    except OSError as exc:
        return [Finding("EFS mount", FAIL, f"cannot read {host.mountinfo}: {exc.strerror}")]
    if entry is None:
        return [Finding("EFS mount", FAIL, f"{path} is not a mount point", "mount the EFS file system there "
                        "(fstab: _netdev, efs with tls, or nfs4 with AWS's options) before mqguard starts")]
    if not entry.fstype.startswith("nfs"):
        return [Finding("EFS mount", WARN, f"{path} is {entry.fstype}, not NFS (a test host?)")]
    return [_mount_options_finding(path, entry.source, _mount_options(lines[-1] if lines else ""))]


def _mount_options(line: str) -> Dict[str, Optional[str]]:
    """A mountinfo line's mount options and super options, together."""
    left, _, right = line.partition(" - ")
    return {**_options(left.split()[5] if len(left.split()) > 5 else ""),
            **_options(right.split()[2] if len(right.split()) > 2 else "")}


def _mount_options_finding(path: str, source: str, opts: Dict[str, Optional[str]]) -> Finding:
    tls = source.startswith(("127.0.0.1:", "localhost:"))  # efs-utils' stunnel
    missing = [k + (f"={v}" if v else "") for k, v in EFS_OPTIONS if opts.get(k, "?") != v and not
               (k == "vers" and (opts.get("vers") or "").startswith("4.")) and not (v is None and k in opts)]
    if "soft" in opts:
        return Finding("EFS mount", FAIL, f"{path} is mounted soft: MQ can see I/O errors as corruption",
                       "mount with hard (AWS and IBM both say so)")
    if "nolock" in opts or opts.get("local_lock", "none") != "none":
        local = "nolock" if "nolock" in opts else f"local_lock={opts.get('local_lock')}"
        return Finding("EFS mount", FAIL, f"{path} is mounted {local}: file locks stay on this host, so another "
                       "host can start the same queue manager and multi-instance failover breaks",
                       "mount without nolock/local_lock (the reference: locks must reach the server)")
    if missing:
        return Finding("EFS mount", WARN, f"{path} ({source}) lacks {', '.join(missing)}",
                       "mount with nfsvers=4.1,hard,timeo=600,retrans=2,noresvport,nodev,nosuid,_netdev (or "
                       "efs-utils with tls,nodev,nosuid)")
    return Finding("EFS mount", PASS, f"{path} ({source}, {'TLS via efs-utils' if tls else 'NFS 4.1'}, "
                   "hard, timeo=600, retrans=2, noresvport, nodev, nosuid)")


def _make_setgid_dir(path: str) -> Tuple[bool, str]:
    """mkdtemp (a random name, created exclusively: nothing to race), then chmod through its descriptor."""
    try:
        probe = tempfile.mkdtemp(prefix=".mqguard-preflight-", dir=path)
    except OSError as exc:
        return False, f"cannot make a directory in {path}: {exc.strerror}"
    try:
        fd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o2775)
            kept = bool(os.fstat(fd).st_mode & stat.S_ISGID)
        finally:
            os.close(fd)
    except OSError as exc:
        return False, f"cannot make a setgid directory in {path}: {exc.strerror}"
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass
    return kept, "" if kept else f"{path} drops the setgid bit"


def setgid_directories(path: str, owner: Optional[Tuple[int, int]] = None, user: str = "mqm") -> List[Finding]:
    """Can the MQ user make MQ's setgid directories on the storage (and are they kept)? Checked AS that user: a
    root-owned file-system root passes for root and fails MQ."""
    ok, detail = as_user(owner, lambda: _make_setgid_dir(path))
    who = f"the MQ user ({user})" if owner is not None and os.geteuid() == 0 else "this user"
    if not ok:
        return [Finding("setgid dirs", FAIL, f"{who}: {detail}",
                        f"give {user} the storage (mqm:mqm, ug+rwx; an EFS access point with the MQ user's UID/GID) "
                        "and check that nothing forbids setgid")]
    return [Finding("setgid dirs", PASS, f"{who} can make setgid directories in {path}")]


def mq_root(root: Optional[str], storage: str = "", multi_instance: bool = False) -> List[Finding]:
    from mqguard.mq.prepare import shared_root_problem

    if root is not None and storage:
        problem = shared_root_problem(root, storage, multi_instance)
        if problem:
            return [Finding("MQ root", FAIL, problem.split(": both hosts")[0] + ": both hosts would share mqs.ini",
                            problem.split("; ", 1)[-1])]
    if root is None:
        return [Finding("MQ root", WARN, "dspmqver does not say where MQ's root is (MQ not installed yet?)",
                        "install IBM MQ; mqguard asks dspmqver (or $MQ_DATA_PATH) and never guesses /var/mqm")]
    if os.path.isfile(os.path.join(root, "mqs.ini")):
        return [Finding("MQ root", PASS, f"{root}/mqs.ini exists")]
    return [Finding("MQ root", WARN, f"{root} has no mqs.ini (an empty file system over it?)",
                    "nothing to do: mqguard runs crtmqdir -s -f first; by hand: crtmqdir -s -f")]


def amqmfsck(bin_dir: str, directory: str, multi_instance: bool, host: Host, user: str = "mqm") -> List[Finding]:
    """IBM's shared-file-system check, when MQ is installed: the basic test here (as the MQ user, with -x: it
    deletes the files it made), -c/-w need a second host."""
    tool = os.path.join(bin_dir, "amqmfsck")
    if not os.access(tool, os.X_OK):
        return [Finding("amqmfsck", WARN, f"{tool} not found (MQ not installed yet?)")]
    runner = host.runner
    if os.geteuid() == 0 and runner.run_as is None:
        try:
            runner = CommandRunner(run_as=RunAs.lookup(user))
        except KeyError:
            pass  # the mqm user check says so
    res = runner.run([tool, "-x", directory], 120)
    if not res.ok():
        return [Finding("amqmfsck", FAIL, f"amqmfsck {directory}: {res.outcome}: {res.output[:200]}",
                        "fix the shared file system before trusting it with MQ's data (IBM: amqmfsck)")]
    out = [Finding("amqmfsck", PASS, f"amqmfsck {directory}: the basic test passed")]
    if multi_instance:
        out.append(Finding("amqmfsck -c/-w", WARN, "the locking tests need both hosts at once",
                           f"run `amqmfsck -c {directory}` and then `amqmfsck -w {directory}` on both hosts at the "
                           "same time (IBM's procedure for multi-instance queue managers)"))
    return out


def lock_heartbeat(data_dir: str, directory: str, minimum: int, on_nfs: bool) -> List[Finding]:
    """FileLockHeartBeatLen of an existing queue manager on the storage (IBM asks for 15 or more on EFS)."""
    from mqguard.mq import qmini
    from mqguard.mq.prepare import find_data_directories

    found = find_data_directories(data_dir, directory)
    if not found:
        return [Finding("lock heartbeat", PASS, f"no queue manager in {data_dir} yet: mqguard creates it with "
                        f"FileLockHeartBeatLen={minimum}" if minimum else "no queue manager yet")]
    out = []
    want = max(minimum, 15 if on_nfs else 0)
    for name in found:
        path = os.path.join(data_dir, name)
        problem = qmini.heartbeat_problem(path, want) if want else None
        if problem:
            out.append(Finding("lock heartbeat", WARN, problem.split(": on EFS")[0],
                               problem.split("; with the queue manager ended, ")[-1] + " (IBM support: 'IBM MQ: "
                               "Considerations for EFS on AWS')"))
        else:
            out.append(Finding("lock heartbeat", PASS, f"{path}/qm.ini: FileLockHeartBeatLen is at least {want}"
                               if want else f"{path}/qm.ini: not checked (file_lock_heartbeat_len = 0)"))
    return out


def units_installed(host: Host) -> List[Finding]:
    out = []
    for unit in ("mqguard.service", TEMPLATE, PREPARE_TEMPLATE):
        found = any(os.path.exists(os.path.join(d, unit)) for d in host.unit_dirs)
        out.append(Finding(unit, PASS if found else FAIL, "installed" if found else "not installed",
                           "install the mqguard RPM"))
    return out


def polkit_rule(host: Host) -> List[Finding]:
    for d in host.polkit_dirs:
        if os.path.isfile(os.path.join(d, POLKIT_RULE)):
            return [Finding("polkit rule", PASS, f"{os.path.join(d, POLKIT_RULE)} lets mqm manage mq@*.service "
                            "and mq-prepare@*.service")]
    return [Finding("polkit rule", FAIL, f"no {POLKIT_RULE} in {', '.join(host.polkit_dirs)}",
                    "install the mqguard RPM (and polkit): without it mqguard cannot start MQ's unit")]


def mq_group_exists(group: str = "mqm") -> List[Finding]:
    try:
        grp.getgrnam(group)
        return []
    except KeyError:
        return [Finding("mqm group", FAIL, f"no group {group}", "install IBM MQ, or create the group")]
