"""A simulator of IBM MQ's control commands, for mqguard's tests and demo.

Faithful to ../shared/reference/mq-control-commands.md: the same arguments,
output lines and exit codes, ``mqs.ini`` and ``qm.ini`` on disk, and a real
``amqzxma0`` process per running queue manager that holds an exclusive lock in
the data directory (on the "EFS" mount) and listens on the listener port.
Killing it leaves ``Ended unexpectedly``, as on real MQ.

``install(bindir, ...)`` writes one executable per command into ``bindir`` and
a ``mqsim.json`` naming this simulated host's ``/var/mqm`` prefix, its host
name, the listener port and a control directory. Files in the control
directory are fault knobs a test can create or remove at any time:

  strmqm.exit        strmqm fails with this exit code (e.g. 71)
  strmqm.delay       seconds the queue manager spends in STARTING
  dspmq.hang         dspmq hangs (until killed)
  dspmq.garble       dspmq prints a line that is not dspmq output
  dspmq.output       dspmq prints this file's text verbatim (a recorded real output), exit 0
  dspmq.flood        dspmq prints one line of this many bytes (a runaway command)
  listener.off       amqzxma0 does not listen on the port
  amqzxma0.ignore_term   controlled ends (endmqm -c/-w) are ignored
  calls.log          (written) one JSON line per command invocation
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

NAME_RE = re.compile(r"^[A-Za-z0-9._/%]{1,48}$")
COMMANDS = ("crtmqm", "strmqm", "endmqm", "dspmq", "dspmqinf", "addmqinf", "rmvmqinf", "runmqsc", "amqzxma0")
LIVE = ("starting", "running", "quiescing", "ending_immediately", "ending_pre_emptively")
WORDS = {  # status key -> (translated, -n)
    "starting": ("Starting", "STARTING"),
    "running": ("Running", "RUNNING"),
    "running_as_standby": ("Running as standby", "RUNNING AS STANDBY"),
    "running_elsewhere": ("Running elsewhere", "RUNNING ELSEWHERE"),
    "quiescing": ("Quiescing", "QUIESCING"),
    "ending_immediately": ("Ending immediately", "ENDING IMMEDIATELY"),
    "ending_pre_emptively": ("Ending pre-emptively", "ENDING PRE-EMPTIVELY"),
    "ended_normally": ("Ended normally", "ENDED NORMALLY"),
    "ended_immediately": ("Ended immediately", "ENDED IMMEDIATELY"),
    "ended_unexpectedly": ("Ended unexpectedly", "ENDED UNEXPECTEDLY"),
    "ended_pre_emptively": ("Ended pre-emptively", "ENDED PRE-EMPTIVELY"),
    "status_not_available": ("Status not available", "STATUS NOT AVAILABLE"),
}
MQSC_VERBS = {
    "DEFINE", "ALTER", "DELETE", "DISPLAY", "DIS", "START", "STOP", "SET", "REFRESH", "CLEAR",
    "RESET", "PING", "RESOLVE", "RESUME", "SUSPEND", "PURGE", "RVERIFY", "DEF", "END",
}


# ------------------------------------------------------------------ install

def install(bindir: str, prefix: str, host: str = "host1", listener_port: int = 0, ctl: Optional[str] = None,
            interpreter: str = sys.executable) -> str:
    """Write the simulator's commands into ``bindir``; returns the control dir.

    ``interpreter``: the Python the commands run with (one the MQ user can execute).
    """
    os.makedirs(bindir, exist_ok=True)
    ctl = ctl or os.path.join(bindir, "ctl")
    os.makedirs(ctl, exist_ok=True)
    os.makedirs(os.path.join(prefix, "errors"), exist_ok=True)
    with open(os.path.join(bindir, "mqsim.json"), "w") as fh:
        json.dump({"prefix": prefix, "host": host, "listener_port": listener_port, "ctl": ctl}, fh)
    # A copy of this module beside the commands: the installation is then
    # self-contained (a systemd test guest may not see the source tree).
    shutil.copyfile(os.path.abspath(__file__), os.path.join(bindir, "mqsim.py"))
    for cmd in COMMANDS:
        path = os.path.join(bindir, cmd)
        with open(path, "w") as fh:
            fh.write(
                f"#!{interpreter}\n"
                "import os, sys\n"
                "sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))\n"
                "import mqsim\n"
                f"sys.exit(mqsim.main({cmd!r}, sys.argv[1:]))\n"
            )
        os.chmod(path, 0o755)
    return ctl


class Sim:
    def __init__(self, bindir: str) -> None:
        with open(os.path.join(bindir, "mqsim.json")) as fh:
            conf = json.load(fh)
        self.bindir = bindir
        self.prefix: str = conf["prefix"]
        self.host: str = conf["host"]
        self.port: int = conf["listener_port"]
        self.ctl: str = conf["ctl"]

    def knob(self, name: str) -> Optional[str]:
        try:
            with open(os.path.join(self.ctl, name)) as fh:
                return fh.read().strip()
        except FileNotFoundError:
            return None

    @property
    def mqs_ini(self) -> str:
        return os.path.join(self.prefix, "mqs.ini")

    # -- mqs.ini ------------------------------------------------------------
    def stanzas(self) -> List[Dict[str, str]]:
        try:
            with open(self.mqs_ini) as fh:
                text = fh.read()
        except FileNotFoundError:
            return []
        out: List[Dict[str, str]] = []
        current: Optional[Dict[str, str]] = None
        for line in text.splitlines():
            if line.strip() == "QueueManager:":
                current = {}
                out.append(current)
            elif line.strip().endswith(":"):
                current = None
            elif current is not None and "=" in line:
                k, _, v = line.strip().partition("=")
                current[k] = v
        return out

    def stanza(self, name: str) -> Optional[Dict[str, str]]:
        for s in self.stanzas():
            if s.get("Name") == name:
                return s
        return None

    def add_stanza(self, attrs: Dict[str, str]) -> None:
        new = not os.path.exists(self.mqs_ini)
        with open(self.mqs_ini, "a") as fh:
            if new:
                fh.write("AllQueueManagers:\n   DefaultPrefix=/var/mqm\nLogDefaults:\n   LogDefaultPath=/var/mqm/log\n")
            fh.write("QueueManager:\n")
            for key in ("Name", "Prefix", "Directory", "DataPath", "InstallationName"):
                if key in attrs:
                    fh.write(f"   {key}={attrs[key]}\n")

    def data_path(self, stanza: Dict[str, str]) -> str:
        return stanza.get("DataPath") or os.path.join(self.prefix, "qmgrs", stanza["Directory"])

    # -- runtime state in the data directory (on the shared file system) -----
    @staticmethod
    def read_state(dp: str) -> Dict[str, object]:
        try:
            with open(os.path.join(dp, "qmstatus.json")) as fh:
                doc: Dict[str, object] = json.load(fh)
                return doc
        except (FileNotFoundError, ValueError):
            return {"status": "ended_immediately"}

    @staticmethod
    def write_state(dp: str, **doc: object) -> None:
        tmp = os.path.join(dp, f".qmstatus.{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, os.path.join(dp, "qmstatus.json"))


def lock_holder(path: str) -> Optional[int]:
    """PID holding a write lock on ``path`` (F_GETLK), or None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        req = struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        l_type, _, _, _, pid = struct.unpack("hhqqi4x", res)
        return None if l_type == fcntl.F_UNLCK else pid
    finally:
        os.close(fd)


def alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def out(*lines: str) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def err(line: str) -> None:
    print(line, file=sys.stderr)
    sys.stderr.flush()


def log_call(sim: Sim, cmd: str, argv: List[str]) -> None:
    with open(os.path.join(sim.ctl, "calls.log"), "a") as fh:
        fh.write(json.dumps({"cmd": cmd, "argv": argv, "host": sim.host, "t": time.time(), "pid": os.getpid()}) + "\n")


def view(sim: Sim, name: str) -> Tuple[str, List[Tuple[str, str]]]:
    """(status key, instance lines) of queue manager ``name`` seen from this host."""
    stanza = sim.stanza(name)
    assert stanza is not None
    dp = sim.data_path(stanza)
    state = sim.read_state(dp)
    holder = lock_holder(os.path.join(dp, "active.lock"))
    standby = state.get("standby") if isinstance(state.get("standby"), dict) else None
    standby_alive = bool(standby and alive(standby.get("pid")))  # type: ignore[union-attr]
    instances: List[Tuple[str, str]] = []
    if holder is not None:
        instances.append((str(state.get("host")), "Active"))
        if standby_alive:
            instances.append((str(standby["host"]), "Standby"))  # type: ignore[index]
        if state.get("host") == sim.host:
            return str(state["status"]), instances
        if standby_alive and standby["host"] == sim.host:  # type: ignore[index]
            return "running_as_standby", instances
        return "running_elsewhere", instances
    status = str(state.get("status", "ended_immediately"))
    if standby_alive and standby["host"] == sim.host:  # type: ignore[index]
        # the active is gone but this standby has not taken the lock yet: still a standby
        return "running_as_standby", [(str(standby["host"]), "Standby")]  # type: ignore[index]
    if status in LIVE:
        return "ended_unexpectedly", []
    return status, []


# ------------------------------------------------------------------ commands

def cmd_dspmq(sim: Sim, argv: List[str]) -> int:
    name, untranslated, show_x = None, False, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m" and i + 1 < len(argv):
            name = argv[i + 1]
            i += 1
        elif a == "-n":
            untranslated = True
        elif a == "-x":
            show_x = True
        elif a in ("-s", "-a"):
            pass
        elif a == "-o" and i + 1 < len(argv):
            i += 1
        else:
            err("Usage: dspmq [-m QMgrName] [-n] [-o status] [-x] [-a]")
            return 36
        i += 1
    if sim.knob("dspmq.hang") is not None:
        time.sleep(3600)
    names = [name] if name else [s["Name"] for s in sim.stanzas()]
    for qm in names:
        if sim.stanza(qm) is None:
            err("AMQ7048E: The queue manager name is either not valid or not known.")
            return 72
    if sim.knob("dspmq.garble") is not None:
        out("QMNAME(" + (name or "?") + "  STATUS(Runn")
        return 0
    recorded = sim.knob("dspmq.output")
    if recorded is not None:
        sys.stdout.write(recorded)
        return 0
    flood = sim.knob("dspmq.flood")
    if flood is not None:
        chunk = b"Q" * 65536
        left = int(flood)
        while left > 0:
            sys.stdout.buffer.write(chunk[:left])
            left -= len(chunk)
        sys.stdout.buffer.write(b"\n")
        return 0
    for qm in names:
        status, instances = view(sim, qm)
        word = WORDS[status][1 if untranslated else 0]
        out(f"{'QMNAME(' + qm + ')':<58}STATUS({word})")
        if show_x:
            for host, mode in instances:
                out(f"    INSTANCE({host}) MODE({mode.upper() if untranslated else mode})")
    return 0


def cmd_dspmqinf(sim: Sim, argv: List[str]) -> int:
    as_command = False
    args = list(argv)
    if len(args) >= 2 and args[0] == "-o":
        as_command = args[1] == "command"
        args = args[2:]
    if len(args) != 1:
        err("Usage: dspmqinf [-s QueueManager] [-o stanza|command] Name")
        return 39
    stanza = sim.stanza(args[0])
    if stanza is None:
        err(f"AMQ8147E: IBM MQ object {args[0]} not found.")
        return 44
    keys = [k for k in ("Name", "Directory", "Prefix", "DataPath", "InstallationName") if k in stanza]
    if as_command:
        out("addmqinf -s QueueManager " + " ".join(f"-v {k}={stanza[k]}" for k in keys if k != "InstallationName"))
    else:
        out("QueueManager:", *[f"   {k}={stanza[k]}" for k in keys])
    return 0


def cmd_addmqinf(sim: Sim, argv: List[str]) -> int:
    attrs: Dict[str, str] = {}
    i = 0
    while i < len(argv):
        if argv[i] == "-s" and i + 1 < len(argv):
            if argv[i + 1] != "QueueManager":
                return 39
            i += 2
        elif argv[i] == "-v" and i + 1 < len(argv) and "=" in argv[i + 1]:
            k, _, v = argv[i + 1].partition("=")
            attrs[k] = v
            i += 2
        else:
            err("Usage: addmqinf -s QueueManager -v Name=... ")
            return 39
    if not all(k in attrs for k in ("Name", "Directory", "Prefix")):
        err("A required attribute is missing.")
        return 46
    if sim.stanza(attrs["Name"]) is not None:
        err("The QueueManager stanza already exists.")
        return 45
    attrs.setdefault("InstallationName", "Installation1")
    sim.add_stanza(attrs)
    out("IBM MQ configuration information added.")
    return 0


def cmd_crtmqm(sim: Sim, argv: List[str]) -> int:
    with_arg = {"-md", "-ld", "-lf", "-lp", "-ls", "-u", "-p", "-ii", "-ic", "-c", "-d", "-t", "-x", "-h", "-oa"}
    no_arg = {"-q", "-lc", "-ll", "-z"}
    md = ld = None
    i, rest = 0, []
    while i < len(argv):
        a = argv[i]
        if a in with_arg and i + 1 < len(argv):
            if a == "-md":
                md = argv[i + 1]
            elif a == "-ld":
                ld = argv[i + 1]
            i += 2
        elif a in no_arg:
            i += 1
        elif a.startswith("-"):
            err(f"Usage: crtmqm ... QMgrName (unknown option {a})")
            return 39
        else:
            rest.append(a)
            i += 1
    if len(rest) != 1:
        return 39
    name = rest[0]
    if not NAME_RE.match(name):
        err("AMQ7048E: The queue manager name is either not valid or not known.")
        return 72
    directory = name.replace(".", "!").replace("/", "&")
    data = os.path.join(md or os.path.join(sim.prefix, "qmgrs"), directory)
    logs = os.path.join(ld or os.path.join(sim.prefix, "log"), directory)
    if sim.stanza(name) is not None or os.path.exists(os.path.join(data, "qm.ini")):
        err("AMQ8110E: IBM MQ queue manager already exists.")
        return 8
    try:
        os.makedirs(os.path.join(data, "errors"), exist_ok=True)
        os.makedirs(logs, exist_ok=True)
        with open(os.path.join(data, "qm.ini"), "w") as fh:
            fh.write(
                "ExitPath:\n   ExitsDefaultPath=/var/mqm/exits/\n"
                "Log:\n   LogPrimaryFiles=3\n   LogSecondaryFiles=2\n   LogFilePages=4096\n"
                f"   LogType=CIRCULAR\n   LogBufferPages=0\n   LogPath={logs}{os.sep}\n"
                "TuningParameters:\n   FileLockHeartBeatLen=30\n"
            )
    except OSError:
        err("Storage not available.")
        return 69
    stanza = {"Name": name, "Prefix": "/var/mqm", "Directory": directory}
    if md:
        stanza["DataPath"] = data
    stanza["InstallationName"] = "Installation1"
    sim.add_stanza(stanza)
    Sim.write_state(data, status="ended_immediately")
    out(
        f"IBM MQ queue manager '{name}' created.",
        f"Directory '{data}' created.",
        "The queue manager is associated with installation 'Installation1'.",
        f"Creating or replacing default objects for queue manager '{name}'.",
        "Default objects statistics : 83 created. 0 replaced. 0 failed.",
        "Completing setup.",
        "Setup completed.",
    )
    return 0


def _spawn_controller(sim: Sim, name: str, standby: bool) -> subprocess.Popen:  # type: ignore[type-arg]
    argv = [os.path.join(sim.bindir, "amqzxma0"), "-m", name, "-u", "mqm"] + (["--standby"] if standby else [])
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def cmd_strmqm(sim: Sim, argv: List[str]) -> int:
    permit_standby = "-x" in argv
    args = [a for a in argv if a not in ("-x", "-z")]
    if len(args) != 1 or args[0].startswith("-"):
        err("Usage: strmqm [-x] [-z] QMgrName")
        return 39
    name = args[0]
    if not NAME_RE.match(name):
        err("AMQ7048E: The queue manager name is either not valid or not known.")
        return 72
    stanza = sim.stanza(name)
    if stanza is None:
        err("AMQ8118E: IBM MQ queue manager does not exist.")
        return 16
    forced = sim.knob("strmqm.exit")
    if forced:
        out(f"IBM MQ queue manager '{name}' starting.")
        err("AMQ6109E: An internal IBM MQ error has occurred.")
        return int(forced)
    dp = sim.data_path(stanza)
    status, _ = view(sim, name)
    if status in ("running", "starting"):
        out("IBM MQ queue manager running.")
        return 5
    if status in ("quiescing", "ending_immediately", "ending_pre_emptively"):
        err(f"AMQ8028E: IBM MQ queue manager '{name}' ending.")
        return 49
    if status == "running_as_standby":
        out(f"A standby instance of queue manager '{name}' is already running.")
        return 30
    if status == "running_elsewhere":
        if not permit_standby:
            err(f"AMQ7279E: IBM MQ queue manager '{name}' is running elsewhere; start it with -x for a standby instance.")
            return 31
        _spawn_controller(sim, name, standby=True)
        deadline = time.time() + 10
        while time.time() < deadline and view(sim, name)[0] != "running_as_standby":
            time.sleep(0.05)
        out(
            f"A standby instance of queue manager '{name}' has been started. The active instance",
            "is running elsewhere.",
        )
        return 30
    out(f"IBM MQ queue manager '{name}' starting.", "The queue manager is associated with installation 'Installation1'.")
    proc = _spawn_controller(sim, name, standby=False)
    deadline = time.time() + 3600
    while time.time() < deadline:
        state = sim.read_state(dp)
        if state.get("pid") == proc.pid and state.get("status") == "running":
            break
        if proc.poll() is not None:
            err("AMQ8041S: The queue manager cannot be restarted or deleted because processes that were previously connected are still running.") if proc.returncode == 24 else err("AMQ6109E: An internal IBM MQ error has occurred.")
            return 24 if proc.returncode == 24 else 71
        time.sleep(0.02)
    # The controller runs on by itself (it is in its own session); strmqm does
    # not wait for it: mark the Popen as done so no warning is printed.
    proc.returncode = 0
    out(
        f"5 log records accessed on queue manager '{name}' during the log replay phase.",
        f"Log replay for queue manager '{name}' complete.",
        f"Transaction manager state recovered for queue manager '{name}'.",
        "Plain text communication is enabled.",
        f"IBM MQ queue manager '{name}' started using V9.4.0.0.",
    )
    return 0


def cmd_amqzxma0(sim: Sim, argv: List[str]) -> int:
    name = argv[argv.index("-m") + 1]
    standby = "--standby" in argv
    stanza = sim.stanza(name)
    if stanza is None:
        return 16
    dp = sim.data_path(stanza)
    fd = os.open(os.path.join(dp, "active.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    if standby:
        state = sim.read_state(dp)
        state["standby"] = {"host": sim.host, "pid": os.getpid()}
        Sim.write_state(dp, **state)
        fcntl.lockf(fd, fcntl.LOCK_EX)  # blocks until the active instance's lock goes
    else:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 24
    ending = {"mode": ""}

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGTERM and sim.knob("amqzxma0.ignore_term") is not None:
            return
        ending["mode"] = "ended_normally" if signum == signal.SIGTERM else "ended_immediately"

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Sim.write_state(dp, status="starting", host=sim.host, pid=os.getpid(), since=time.time())
    delay = float(sim.knob("strmqm.delay") or 0)
    end = time.time() + delay
    while time.time() < end and not ending["mode"]:
        time.sleep(0.05)
    listener = None
    if sim.port and sim.knob("listener.off") is None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", sim.port))
        listener.listen(16)
        listener.settimeout(0.2)
    Sim.write_state(dp, status="running", host=sim.host, pid=os.getpid(), since=time.time())
    with open(os.path.join(dp, "errors", "AMQERR01.LOG"), "a") as fh:
        fh.write(f"{time.strftime('%m/%d/%Y %I:%M:%S %p')} - Process({os.getpid()}) Host({sim.host})\n"
                 f"AMQ8003I: IBM MQ queue manager '{name}' started using V9.4.0.0.\n")
    while not ending["mode"]:
        if listener is not None:
            try:
                conn, _ = listener.accept()
                conn.close()
            except (socket.timeout, OSError):
                pass
        else:
            time.sleep(0.2)
    if listener is not None:
        listener.close()
    Sim.write_state(dp, status=ending["mode"], host=sim.host, pid=None)
    return 0


def cmd_endmqm(sim: Sim, argv: List[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    args = [a for a in argv if not a.startswith("-")]
    if len(args) != 1:
        err("Usage: endmqm [-c | -w | -i | -p] [-s] [-x] [-r] QMgrName")
        return 39
    name = args[0]
    stanza = sim.stanza(name)
    if stanza is None:
        err("AMQ8118E: IBM MQ queue manager does not exist.")
        return 16
    dp = sim.data_path(stanza)
    state = sim.read_state(dp)
    status, _ = view(sim, name)
    if "-x" in flags:
        standby = state.get("standby")
        if status != "running_as_standby" or not isinstance(standby, dict):
            err("AMQ8146E: IBM MQ queue manager not available.")
            return 40
        os.kill(int(standby["pid"]), signal.SIGKILL)
        out(f"IBM MQ queue manager '{name}' ending.", f"IBM MQ queue manager '{name}' ended.")
        return 0
    if status not in LIVE:
        err("AMQ8146E: IBM MQ queue manager not available.")
        return 40
    pid = int(state["pid"])  # type: ignore[call-overload]
    if "-p" in flags:
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.02)
        Sim.write_state(dp, status="ended_pre_emptively", host=sim.host, pid=None)
        out(f"IBM MQ queue manager '{name}' ending.", f"IBM MQ queue manager '{name}' ended.")
        return 0
    if "-i" in flags:
        os.kill(pid, signal.SIGINT)
        out(f"IBM MQ queue manager '{name}' ending.")
        while alive(pid):
            time.sleep(0.02)
        out(f"IBM MQ queue manager '{name}' ended.")
        return 0
    os.kill(pid, signal.SIGTERM)
    if "-w" not in flags:
        out("Quiesce request accepted. The queue manager will stop when all outstanding work", "is complete.")
        return 0
    last = 0.0
    while alive(pid):
        if time.time() - last >= 1.0:
            out(f"Waiting for queue manager '{name}' to end.")
            last = time.time()
        time.sleep(0.02)
    out(f"IBM MQ queue manager '{name}' ended.")
    return 0


def _mqsc_commands(text: str) -> List[str]:
    cmds, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("*")):
            continue
        if line.endswith(("+", "-")):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            cmds.append(" ".join(buf.split()))
        buf = ""
    if buf.strip():
        cmds.append(" ".join(buf.split()))
    return cmds


def cmd_runmqsc(sim: Sim, argv: List[str]) -> int:
    args = [a for a in argv if not a.startswith("-")]
    out("5724-H72 (C) Copyright IBM Corp. 1994, 2024.")
    if len(args) != 1 or sim.stanza(args[0]) is None:
        err("AMQ8118E: IBM MQ queue manager does not exist.")
        return 20
    name = args[0]
    if view(sim, name)[0] != "running":
        err("AMQ8146E: IBM MQ queue manager not available.")
        return 20
    out(f"Starting MQSC for queue manager {name}.", "", "")
    cmds = _mqsc_commands(sys.stdin.read())
    syntax = 0
    dp = sim.data_path(sim.stanza(name))  # type: ignore[arg-type]
    with open(os.path.join(dp, "mqsc.log"), "a") as log:
        for n, cmd in enumerate(cmds, 1):
            out(f"{n:>6} : {cmd}")
            verb = cmd.split()[0].upper()
            if verb not in MQSC_VERBS:
                syntax += 1
                out("AMQ8405E: Syntax error detected at or near end of command segment below:-", cmd.split()[0])
                continue
            log.write(cmd + "\n")
            out("AMQ8006I: IBM MQ queue created." if "QLOCAL" in cmd.upper() else "AMQ8097I: IBM MQ command processed.")
    out(
        "One MQSC command read." if len(cmds) == 1 else f"{len(cmds)} MQSC commands read.",
        "No commands have a syntax error." if syntax == 0 else
        ("One command has a syntax error." if syntax == 1 else f"{syntax} commands have a syntax error."),
        "All valid MQSC commands were processed.",
    )
    return 10 if syntax else 0


def cmd_rmvmqinf(sim: Sim, argv: List[str]) -> int:
    if len(argv) != 1:
        return 39
    if sim.stanza(argv[0]) is None:
        return 44
    status, _ = view(sim, argv[0])
    if status in ("running", "starting"):
        return 5
    if status == "running_as_standby":
        return 26
    keep = [s for s in sim.stanzas() if s.get("Name") != argv[0]]
    os.unlink(sim.mqs_ini)
    for s in keep:
        sim.add_stanza(s)
    out("IBM MQ configuration information removed.")
    return 0


HANDLERS = {
    "dspmq": cmd_dspmq, "dspmqinf": cmd_dspmqinf, "addmqinf": cmd_addmqinf, "crtmqm": cmd_crtmqm,
    "strmqm": cmd_strmqm, "endmqm": cmd_endmqm, "runmqsc": cmd_runmqsc, "rmvmqinf": cmd_rmvmqinf,
    "amqzxma0": cmd_amqzxma0,
}


def main(cmd: str, argv: List[str]) -> int:
    sim = Sim(os.path.dirname(os.path.abspath(sys.argv[0])))
    if cmd != "amqzxma0":
        log_call(sim, cmd, argv)
    return HANDLERS[cmd](sim, argv)


# -------------------------------------------------------------- test helpers

def controller_pids(name: str) -> List[int]:
    """Live amqzxma0 processes for ``name`` on this machine."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as fh:
                if fh.read().strip() != "amqzxma0":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if name.encode() in args and alive(int(entry)):
            pids.append(int(entry))
    return pids


def calls(ctl: str, cmd: Optional[str] = None) -> List[Dict[str, object]]:
    try:
        with open(os.path.join(ctl, "calls.log")) as fh:
            entries = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []
    return [e for e in entries if cmd is None or e["cmd"] == cmd]
