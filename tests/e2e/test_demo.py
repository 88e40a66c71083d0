"""`make demo` on a machine that runs other queue managers: it touches nothing it did not start (issue 24 item 4).

A run of the demo next to `make test` once SIGKILLed that run's simulated QM1 (it picked "the first amqzxma0 with
QM1 in its argv" on the machine); on a real MQ host it would have been the production queue manager."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

FOREIGN = """import signal, sys, time
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)  # like MQ's processes
print("up", flush=True)
time.sleep(float(sys.argv[-1]))
"""


def _foreign(tmp: Path, bare: bool) -> subprocess.Popen[bytes]:
    """Someone else's `amqzxma0 -m QM1` (a real MQ's argv, absolute path or 9.2's bare argv[0])."""
    prog = tmp / "opt-mqm" / "bin" / "amqzxma0"
    prog.parent.mkdir(parents=True, exist_ok=True)
    prog.write_text(f"#!{sys.executable}\n{FOREIGN}")
    prog.chmod(0o755)
    argv = ["amqzxma0", "-m", "QM1", "-x", "300"] if bare else [str(prog), "-m", "QM1", "-x", "-u", "mqm", "300"]
    proc = subprocess.Popen([sys.executable, str(prog), *argv[1:]] if bare else argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
    return proc


def test_the_demo_refuses_to_run_on_a_host_with_ibm_mq(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), "--refuse-if", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "looks like a real IBM MQ host" in res.stderr
    assert "starting peers" not in res.stdout


def test_the_demo_leaves_a_foreign_queue_manager_of_any_name_alone(tmp_path: Path) -> None:
    foreign = [_foreign(tmp_path / "a", bare=False), _foreign(tmp_path / "b", bare=True)]
    try:
        res = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), "--refuse-if", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
        assert "kill -9" in res.stdout and "MQGDEMO." in res.stdout, "the demo did its own kills, on its own name"
        for proc in foreign:
            assert proc.poll() is None, "the demo killed a queue manager it did not start"
    finally:
        for proc in foreign:
            proc.kill()
            proc.wait()
