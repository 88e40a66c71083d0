"""The command runner, with real processes."""

from __future__ import annotations

import json
import os
import pwd
import sys
import threading
import time
from pathlib import Path

import pytest

from mqguard.base.runner import OUTPUT_LIMIT, CommandRunner, RunAs

PY = sys.executable


def test_both_streams_and_exit_code_are_kept() -> None:
    res = CommandRunner().run([PY, "-c", "import sys; print('out'); print('AMQ8146E: x', file=sys.stderr); sys.exit(40)"], 10)
    assert res.returncode == 40 and res.stdout.strip() == "out" and "AMQ8146E" in res.stderr
    assert "out" in res.output and "AMQ8146E" in res.output
    assert not res.ok() and res.ok((0, 40))
    assert "exit 40" in res.describe()


def test_arguments_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    res = CommandRunner().run([PY, "-c", "import sys; print(sys.argv[1])", f"QM1; touch {marker}"], 10)
    assert res.stdout.strip() == f"QM1; touch {marker}"
    assert not marker.exists()


def test_timeout_kills_the_whole_process_group_quickly(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    res = CommandRunner().run([PY, "-c", script], 1.0)
    assert res.timed_out and res.returncode is None and not res.ok()
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and _state(child) != "Z":
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}") or _state(child) == "Z", "grandchild survived the timeout"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_child_environment_is_an_allow_list() -> None:
    env = {"PATH": os.environ["PATH"], "NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1",
           "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "t",
           "PYTHONPATH": "/x", "KEEP": "y", "MQ_CONNECT_TYPE": "BINDINGS", "LANG": "C.UTF-8", "LC_ALL": "C"}
    script = "import os, json; print(json.dumps(sorted(os.environ)))"
    res = CommandRunner(base_env=env).run([PY, "-c", script], 10)
    seen = set(json.loads(res.stdout))
    assert {"PATH", "MQ_CONNECT_TYPE", "LANG", "LC_ALL"} <= seen
    assert not seen & {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "AWS_ACCESS_KEY_ID",
                       "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PYTHONPATH", "KEEP"}


def test_runaway_output_is_capped_keeping_head_and_tail() -> None:
    # 32 MiB on stdout and a little on stderr: the result keeps the first and last
    # OUTPUT_LIMIT bytes of each stream and says how much it dropped.
    script = ("import sys; sys.stdout.write('HEAD'); sys.stdout.flush()\n"
              "chunk = 'x' * 65536\n"
              "for _ in range(512): sys.stdout.write(chunk)\n"
              "sys.stdout.write('TAIL'); sys.stderr.write('err-end')")
    res = CommandRunner().run([PY, "-c", script], 60)
    assert res.ok()
    assert res.stdout.startswith("HEAD") and res.stdout.endswith("TAIL")
    assert len(res.stdout) < 2 * OUTPUT_LIMIT + 200
    assert "bytes of output omitted" in res.stdout
    assert res.stderr == "err-end"


def test_describe_escapes_control_characters_and_bounds_lines() -> None:
    script = "print('AMQ\\x1b[31mred\\x00' + 'y' * 5000)"
    res = CommandRunner().run([PY, "-c", script], 10, ok_codes=(1,))
    line = res.describe()
    assert "\x1b" not in line and "\x00" not in line
    assert "\\x1b" in line and len(line) < 600 and "5012 characters" in line


def test_missing_binary_is_an_error_result_not_an_exception() -> None:
    res = CommandRunner().run(["/nonexistent/dspmq", "-m", "QM1"], 5)
    assert res.error and not res.ok() and "could not run" in res.describe()


def test_observers_see_each_command_with_its_verdict() -> None:
    seen = []
    runner = CommandRunner(observers=[lambda r, ok: seen.append((r.name, ok))])
    runner.run([PY, "-c", "raise SystemExit(44)"], 5, ok_codes=(0, 44))
    runner.run([PY, "-c", "raise SystemExit(44)"], 5)
    assert seen == [(os.path.basename(PY), True), (os.path.basename(PY), False)]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_run_as_switches_user_and_groups() -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    run_as = RunAs.lookup("nobody")
    assert run_as is not None
    runner = CommandRunner(run_as=run_as)
    # system binaries: the test's own Python may sit in a directory nobody cannot read
    assert runner.run(["/usr/bin/id", "-u"], 10).stdout.strip() == str(nobody.pw_uid)
    assert runner.run(["/usr/bin/id", "-g"], 10).stdout.strip() == str(nobody.pw_gid)
    assert "USER=nobody" in runner.run(["/usr/bin/env"], 10).stdout.splitlines()


def test_run_as_own_user_or_empty_is_no_switch() -> None:
    assert RunAs.lookup("") is None
    assert RunAs.lookup(pwd.getpwuid(os.geteuid()).pw_name) is None
    with pytest.raises(KeyError):
        RunAs.lookup("no-such-user-mqguard")


def test_cancel_running_kills_a_running_command_and_refuses_new_ones_until_resumed() -> None:
    runner = CommandRunner()
    results = []
    t = threading.Thread(target=lambda: results.append(runner.run([PY, "-c", "import time; time.sleep(60)"], 120)))
    t.start()
    deadline = time.monotonic() + 10
    while not runner._running and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    assert runner.cancel_running() == 1
    t.join(10)
    assert time.monotonic() - start < 5
    assert results[0].error.startswith("cancelled") and not results[0].ok()
    assert runner.run([PY, "-c", "pass"], 10).error.startswith("cancelled")
    runner.resume()
    assert runner.run([PY, "-c", "pass"], 10).ok()


def test_mq_commands_run_in_the_c_locale_whatever_mqguard_runs_in() -> None:
    """Issue 24 item 12: mqguard parses MQ's English output (dspmq, dspmqver, runmqsc's summary), while LANG/LC_*
    passed through: a German host's runmqsc summary would not parse."""
    env = CommandRunner(base_env={"PATH": "/usr/bin:/bin", "LANG": "de_DE.UTF-8", "LC_MESSAGES": "de_DE.UTF-8",
                                  "LC_ALL": "fr_FR.UTF-8"}).environment()
    assert env["LANG"] == "C" and env["LC_ALL"] == "C" and "LC_MESSAGES" not in env
