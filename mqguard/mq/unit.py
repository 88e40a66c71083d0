"""The queue manager's systemd unit: its name, whether to use one, and systemctl.

mqguard runs unprivileged and sandboxed; the queue manager runs in its own
unit (``mq@QM1.service``: its own cgroup, limits and no sandbox of mqguard's).
A polkit rule shipped in the RPM lets the MQ user start, stop and restart
``mq@*.service`` and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

from mqguard.base.runner import CommandResult, CommandRunner

TEMPLATE = "mq@.service"
PREPARE_TEMPLATE = "mq-prepare@.service"  # oneshot: crtmqdir/addmqinf/crtmqm outside mqguard's sandbox
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
# ActiveState values in which the unit holds (or is getting or giving up) the queue manager
ACTIVE_STATES = frozenset({"active", "activating", "deactivating", "reloading"})
_PLAIN = re.compile(r"[A-Za-z0-9:_.]")


def escape_instance(name: str) -> str:
    """``systemd-escape`` of a queue-manager name: "/" becomes "-", others outside [A-Za-z0-9:_.] "\\xNN"."""
    out = []
    for i, ch in enumerate(name):
        if ch == "/":
            out.append("-")
        elif _PLAIN.match(ch) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode()))
    return "".join(out)


def unit_name(template: str, qmgr: str) -> str:
    prefix, _, suffix = template.partition("@")
    return f"{prefix}@{escape_instance(qmgr)}{suffix}"


def installed(template: str, exists: Callable[[str], bool] = os.path.exists) -> bool:
    return any(exists(os.path.join(d, template)) for d in UNIT_DIRS)


def resolve(setting: str, env: Mapping[str, str], exists: Callable[[str], bool] = os.path.exists) -> Optional[str]:
    """The template the queue manager runs in, or None for "as mqguard's child". Pure but for ``exists``.

    ``auto``: the template when mqguard itself runs as a systemd service (the
    queue manager must then not inherit mqguard's sandbox), else none.
    ValueError when a template is called for but not installed.
    """
    service = bool(env.get("INVOCATION_ID") and env.get("NOTIFY_SOCKET"))  # mqguard runs as a systemd service
    if setting == "none":
        if service:
            raise ValueError(
                "auto or a template unit when mqguard runs under systemd: unit = none would run the queue manager "
                "inside mqguard's own service, with its sandbox and cgroup (RestrictSUIDSGID= refuses MQ's setgid "
                "directories, TasksMax=256 and LimitNOFILE=1024 are below IBM's minimums, and every restart of "
                "mqguard kills the queue manager); unit = none is for running mqguard outside systemd")
        return None
    template = setting
    if setting == "auto":
        if not service:
            return None
        template = TEMPLATE
    if not installed(template, exists):
        raise ValueError(f"expected {template} to be installed in one of {', '.join(UNIT_DIRS)} "
                         "(the mqguard RPM ships mq@.service), or unit = none")
    return template


@dataclass(frozen=True)
class UnitState:
    load_state: str
    active_state: str
    sub_state: str
    result: str
    main_pid: int
    start_status: Optional[int]  # exit code of the last ExecStart (mq-unit start, i.e. strmqm's)
    mounts_for: Tuple[str, ...] = ()  # RequiresMountsFor=
    main_status: Optional[int] = None  # ExecMainStatus= (a oneshot's exit code)


# Only an ExecStart that has exited has a status. systemd 252 prints "... ; pid=143 ; code=exited ; status=5 }"
# (seen in the system tests' real systemd), and "code=(null) ; status=0/0" while it still runs.
_STATUS = re.compile(r"\bcode=exited ; status=(\d+)\b")


def parse_show(text: str) -> UnitState:
    """``systemctl show -p ...`` output (KEY=VALUE lines)."""
    props: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    match = _STATUS.search(props.get("ExecStart", ""))
    try:
        pid = int(props.get("MainPID", "0") or 0)
    except ValueError:
        pid = 0
    main = props.get("ExecMainStatus", "")
    return UnitState(props.get("LoadState", ""), props.get("ActiveState", ""), props.get("SubState", ""),
                     props.get("Result", ""), pid, int(match.group(1)) if match else None,
                     tuple(props.get("RequiresMountsFor", "").split()), int(main) if main.isdigit() else None)


def covers(mounts_for: Tuple[str, ...], path: str) -> bool:
    """Whether RequiresMountsFor= includes ``path`` (or a directory below it: systemd requires every mount above)."""
    path = os.path.normpath(path)
    return any(os.path.normpath(m) == path or os.path.normpath(m).startswith(path.rstrip("/") + "/")
               for m in mounts_for)


class SystemdUnit:
    """``systemctl`` for one unit, as mqguard's own user (polkit decides), never interactive."""

    def __init__(self, name: str, runner: CommandRunner, systemctl: Optional[str] = None) -> None:
        self.name = name
        self.runner = runner
        self.systemctl_path = systemctl or shutil.which("systemctl") or "/usr/bin/systemctl"

    def systemctl(self, verb: str, timeout: float, no_block: bool = False) -> CommandResult:
        argv = [self.systemctl_path, "--no-ask-password", "--quiet"] + (["--no-block"] if no_block else [])
        return self.runner.run(argv + [verb, self.name], timeout)

    def show(self, timeout: float) -> Optional[UnitState]:
        props = "LoadState,ActiveState,SubState,Result,MainPID,ExecStart,RequiresMountsFor,ExecMainStatus"
        res = self.runner.run([self.systemctl_path, "show", self.name, "-p", props], timeout)
        return parse_show(res.stdout) if res.ok() else None
