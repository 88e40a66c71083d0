#!/usr/bin/env python3
"""make demo: the real ``mqguard run`` against real peers, narrated.

Peers: the MQ control-command simulator (a real amqzxma0 process), a FUSE
bindfs mount as "EFS", an IMDSv2 server and moto's Auto Scaling server, all on
127.0.0.1. The story: queue manager created -> running -> killed -> restarted
locally -> made to fail persistently -> reported Unhealthy (read back from the
ASG) -> clean stop. Everything started here is stopped and unmounted at the end.

It never touches what it did not start: it refuses to run on a host where IBM
MQ is installed (/opt/mqm), its queue manager has a name no one uses
(MQGDEMO.<pid>), and every process it kills is found by its own simulator's
installation directory and that name, never by name across the machine (a
real queue manager, or the one a parallel `make test` runs, is left alone).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers.aws import MotoAsg  # noqa: E402
from tests.peers.efs import FakeEfs, available  # noqa: E402
from tests.peers.imds import ImdsServer  # noqa: E402
from tests.sim import mqsim  # noqa: E402
from tests.support import free_port, kill_controllers, wait_until  # noqa: E402

COLOURS = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m")
BOLD, DIM, GREEN, RED, RESET = COLOURS if sys.stdout.isatty() else ("",) * 5
T0 = time.monotonic()


def say(text: str, colour: str = BOLD) -> None:
    print(f"{colour}[{time.monotonic() - T0:6.1f}s] == {text}{RESET}", flush=True)


def wait(pred: Callable[[], object], timeout: float, what: str) -> None:
    try:
        wait_until(pred, timeout, what)
    except AssertionError as exc:
        raise SystemExit(f"demo failed: {exc}") from None


class Tail(threading.Thread):
    """Echo mqguard's log lines, dimmed, as they arrive."""

    def __init__(self, stream: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = stream
        self.lines: List[str] = []

    def run(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.append(line)
            print(f"{DIM}   mqguard| {line.rstrip()}{RESET}", flush=True)

    def seen(self, text: str) -> bool:
        return any(text in line for line in self.lines)


MQ_INSTALLATION = "/opt/mqm"  # IBM MQ's installation: where it exists, this is a real MQ host


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="mqguard's demo against simulated peers")
    parser.add_argument("--refuse-if", default=MQ_INSTALLATION, metavar="PATH",
                        help="refuse to run where PATH exists (default: IBM MQ's installation, /opt/mqm)")
    args = parser.parse_args(argv)
    if os.path.lexists(args.refuse_if):
        print(f"refusing to run the demo: {args.refuse_if} exists, so this looks like a real IBM MQ host. The demo "
              "starts and kills simulated queue managers; run it on a build or test machine instead.", file=sys.stderr)
        return 2
    why = available()
    if why:
        print(f"demo needs FUSE: {why}", file=sys.stderr)
        return 1
    qmgr = f"MQGDEMO.{os.getpid()}"  # a name no real or test queue manager uses
    tmp = Path(tempfile.mkdtemp(prefix="mqguard-demo-"))
    efs: Optional[FakeEfs] = None
    imds: Optional[ImdsServer] = None
    moto: Optional[MotoAsg] = None
    daemon: Optional[subprocess.Popen[str]] = None
    bindir = str(tmp / "opt-mqm-bin")
    try:
        say("starting peers: moto Auto Scaling, IMDSv2, a FUSE 'EFS', the MQ simulator")
        # moto accepts any key; these are its documented dummy values, not secrets
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106
        moto = MotoAsg().start()
        imds = ImdsServer(instance_id=moto.instance_id).start()
        efs = FakeEfs(str(tmp)).mount()
        port = free_port()
        ctl = mqsim.install(bindir, str(tmp / "var-mqm"), host="ip-10-0-1-23")
        mqsc = tmp / "mqsc.d"
        mqsc.mkdir()
        (mqsc / "10-app.mqsc").write_text(
            "DEFINE QLOCAL(APP.ORDERS) REPLACE\nDEFINE QLOCAL(APP.REPLIES) REPLACE\n"
        )
        conf = tmp / "mqguard.conf"
        conf.write_text(
            f"[queue_manager]\nname = {qmgr}\nmq_bin_dir = {bindir}\nrun_as =\n"
            f"data_dir = {efs.path}/qmgrs\nlog_dir = {efs.path}/logs\nmqsc_dir = {mqsc}\n"
            f"listener_port = {port}\nstop_on_exit = always\nstop_timeout = 10s\n"
            f"[storage]\npath = {efs.path}\nfstypes = fuse\nprobe_timeout = 1s\n"
            "[health]\npoll_interval = 2s\ngrace_period = 8s\nrestart_attempts = 2\ncommand_timeout = 3s\n"
            f"[aws]\nregion = us-east-1\nendpoint_url = {moto.url}\nimds_url = {imds.url}\n"
            "[metrics]\nlisten = off\n"
            f"[control]\nsocket = {tmp}/ctl/mqguard.sock\ngroup = root\n"
        )
        print(f"{DIM}{conf.read_text()}{RESET}")
        say(f"ASG '{moto.asg_name}' instance {moto.instance_id} health: {moto.health()}", GREEN)

        say("starting `mqguard run` on an empty EFS")
        env = dict(os.environ, PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mqguard", "run", "--config", str(conf)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        tail = Tail(daemon)
        tail.start()
        wait(lambda: tail.seen(f"{qmgr}: running"), 60, "the queue manager to run")
        pid = mqsim.controller_pids(qmgr, bindir)[0]
        say(f"queue manager {qmgr} created on EFS, started (amqzxma0 pid {pid}) and MQSC applied", GREEN)

        say(f"kill -9 {pid}  (the queue manager crashes)", RED)
        os.kill(pid, signal.SIGKILL)
        crashed = time.monotonic()
        wait(lambda: [p for p in mqsim.controller_pids(qmgr, bindir) if p != pid], 30, "a local restart")
        took = time.monotonic() - crashed
        say(f"restarted locally in {took:.2f}s (poll interval is 2s; the pidfd woke mqguard)", GREEN)
        wait(lambda: sum(f"{qmgr}: running" in line for line in tail.lines) >= 2, 30, "running again")

        say("making strmqm fail (exit 71) and crashing the queue manager again", RED)
        Path(ctl, "strmqm.exit").write_text("71")
        os.kill(mqsim.controller_pids(qmgr, bindir)[0], signal.SIGKILL)
        failed = time.monotonic()
        wait(lambda: moto.health() == "Unhealthy", 60, "the Unhealthy report")
        say(f"after {time.monotonic() - failed:.1f}s (grace period 8s, 2 local attempts): ASG says "
            f"{moto.instance_id} is {moto.health()}", GREEN)
        for inst in moto.instances():
            print(f"   describe-auto-scaling-instances: {inst['InstanceId']} {inst['AutoScalingGroupName']} "
                  f"HealthStatus={inst['HealthStatus']} LifecycleState={inst['LifecycleState']}")

        say("operator fixes strmqm; SIGTERM to mqguard (stop_on_exit = always)")
        Path(ctl, "strmqm.exit").unlink()
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=60)
        tail.join(5)
        say(f"mqguard exited {rc}; amqzxma0 processes of {qmgr} left: {len(mqsim.controller_pids(qmgr, bindir))}",
            GREEN)
        daemon = None
        say("what happened, from the history every host keeps on EFS: mqguard history")
        hist = subprocess.run([sys.executable, "-m", "mqguard", "history", "--config", str(conf)], env=env,
                              capture_output=True, text=True, timeout=60)
        print(hist.stdout + hist.stderr, flush=True)
        say("and what it suggests: mqguard history --advise (a demo has too little history for most values)")
        advice = subprocess.run([sys.executable, "-m", "mqguard", "history", "--advise", "--config", str(conf)],
                                env=env, capture_output=True, text=True, timeout=60)
        print(advice.stdout + advice.stderr, flush=True)
        kinds = "recovery" in hist.stdout and "#2" in hist.stdout
        say("demo complete" if kinds else "demo complete, but the history lacks the two episodes", GREEN)
        return 0 if rc == 0 and hist.returncode == 0 and advice.returncode == 0 and kinds else 1
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        kill_controllers(bindir)  # only this demo's simulator: its installation directory is ours
        if efs is not None:
            efs.unmount()
        if imds is not None:
            imds.stop()
        if moto is not None:
            moto.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        say("cleaned up: daemon stopped, simulator processes killed, EFS unmounted, servers stopped", DIM)


if __name__ == "__main__":
    sys.exit(main())
