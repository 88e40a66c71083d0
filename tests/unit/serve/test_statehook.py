"""on_state_change hooks: real programs run with the argv/env of section 14, in order,
coalesced, killed at the timeout, never through a shell; and the Elastic IP example
against moto's EC2."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import Dict, List

import pytest

from mqguard.serve.statehook import Change, StateHook
from tests.conftest import ROOT, wait_until
from tests.peers.aws import REGION, MotoAsg

RECORDER = """#!/bin/sh
printf '%s\\n' "$(printf '%s|' "$@")$MQGUARD_ROLE|$MQGUARD_INSTANCE_ID|$MQGUARD_REASON" >> "$(dirname "$0")/calls"
sleep "${HOOK_SLEEP:-0}"
exit "${HOOK_EXIT:-0}"
"""


def recorder(tmp_path: Path, sleep: float = 0, code: int = 0) -> Path:
    prog = tmp_path / "hook"
    prog.write_text(RECORDER.replace("${HOOK_SLEEP:-0}", str(sleep)).replace("${HOOK_EXIT:-0}", str(code)))
    prog.chmod(0o755)
    return prog


def calls(tmp_path: Path) -> List[str]:
    f = tmp_path / "calls"
    return f.read_text().splitlines() if f.exists() else []


class Counter:
    def __init__(self) -> None:
        self.results: List[str] = []

    def __call__(self, result: str) -> None:
        self.results.append(result)


def test_argv_and_environment_as_specified(tmp_path: Path) -> None:
    counter = Counter()
    hook = StateHook(str(recorder(tmp_path)), 10, "QM.1", lambda: "i-0123456789abcdef0", counter)
    try:
        hook.notify("running", "starting", "running: healthy", "active")
        wait_until(lambda: counter.results, 10, "the hook to run")
    finally:
        hook.stop()
    assert calls(tmp_path) == ["running|starting|QM.1|active|i-0123456789abcdef0|running: healthy"]
    assert counter.results == ["ok"]


def test_changes_run_in_order_and_are_coalesced_while_one_runs(tmp_path: Path) -> None:
    counter = Counter()
    hook = StateHook(str(recorder(tmp_path, sleep=1)), 10, "QM1", lambda: None, counter)
    try:
        hook.notify("starting", "preparing", "r1", "none")
        time.sleep(0.3)  # the first run is under way
        hook.notify("running", "starting", "r2", "active")
        hook.notify("recovering", "running", "r3", "none")
        hook.notify("failed", "recovering", "r4", "none")
        wait_until(lambda: len(counter.results) == 2, 15, "two runs")
        time.sleep(1.5)
    finally:
        hook.stop()
    seen = [line.split("|")[:2] for line in calls(tmp_path)]
    # the three that came during the first run became one: the latest state, from the state last announced
    assert seen == [["starting", "preparing"], ["failed", "starting"]]


def test_a_slow_hook_is_killed_at_the_timeout_and_a_failing_one_counted(tmp_path: Path) -> None:
    counter = Counter()
    slow = StateHook(str(recorder(tmp_path, sleep=60)), 1, "QM1", lambda: None, counter)
    began = time.monotonic()
    try:
        slow.notify("failed", "running", "r", "none")
        wait_until(lambda: counter.results, 10, "the kill")
    finally:
        slow.stop()
    assert counter.results == ["timeout"] and time.monotonic() - began < 5
    failing = StateHook(str(recorder(tmp_path, code=3)), 5, "QM1", lambda: None, counter)
    try:
        failing.notify("running", "starting", "r", "active")
        wait_until(lambda: len(counter.results) == 2, 10, "the failure")
    finally:
        failing.stop()
    assert counter.results == ["timeout", "failed"]
    missing = StateHook(str(tmp_path / "nope"), 5, "QM1", lambda: None, counter)
    try:
        missing.notify("running", "starting", "r", "active")
        wait_until(lambda: len(counter.results) == 3, 10, "the error")
    finally:
        missing.stop()
    assert counter.results[-1] == "error"


def test_no_shell_a_state_name_cannot_inject(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    counter = Counter()
    hook = StateHook(str(recorder(tmp_path)), 5, "QM1", lambda: None, counter)
    try:
        hook.notify(f"running; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", "active")
        wait_until(lambda: counter.results, 10, "the hook")
    finally:
        hook.stop()
    assert not marker.exists()
    assert calls(tmp_path)[0].startswith(f"running; touch {marker}|$(touch {marker})|")


def test_environment_keeps_only_what_a_hook_needs() -> None:
    from mqguard.serve.statehook import hook_environment

    base = {"PATH": "/bin", "AWS_REGION": "eu-west-1", "NOTIFY_SOCKET": "/run/x", "SECRET": "s",
            "WATCHDOG_USEC": "1", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "k", "AWS_SESSION_TOKEN": "t"}
    env = hook_environment(Change("running", "starting", "why", "active"), None, base)
    # issue 16 item 10: mqguard's static credentials reached every hook
    assert env == {"PATH": "/bin", "AWS_REGION": "eu-west-1", "MQGUARD_REASON": "why", "MQGUARD_ROLE": "active"}
    env = hook_environment(Change("running", "starting", "why", "active"), None, base, credentials=True)
    assert all(env[k] == base[k] for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))


def test_a_hooks_processes_in_other_sessions_are_ended_at_the_timeout(tmp_path: Path) -> None:
    """Issue 16 item 10: grandchildren that called setsid survived the timeout (3 left running)."""
    import subprocess

    script = tmp_path / "hook"
    script.write_text("#!/bin/sh\nfor i in 1 2 3; do setsid sleep 300 & done\nsleep 300\n")
    script.chmod(0o755)
    counter = Counter()
    hook = StateHook(str(script), 1, "QM1", lambda: None, counter, base_env={"PATH": os.environ["PATH"]})
    try:
        hook.notify("running", "starting", "x", "active")
        wait_until(lambda: counter.results == ["timeout"], 15, "the timeout")
    finally:
        hook.stop()
    left = subprocess.run(["pgrep", "-f", "^sleep 300$"], capture_output=True, text=True).stdout.split()
    mine = [p for p in left if b"MQGUARD_HOOK_RUN=" in Path(f"/proc/{p}/environ").read_bytes()]
    assert mine == [], f"setsid'd children of the hook still run: {mine}"


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed (pip install awscli)")
def test_elastic_ip_example_moves_the_address_in_moto_ec2(tmp_path: Path, moto_session: MotoAsg) -> None:
    ec2 = moto_session.client("ec2")
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    first, second = (ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
                     for _ in range(2))
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    script = tmp_path / "move-elastic-ip"
    shutil.copy(ROOT / "examples" / "hooks" / "move-elastic-ip", script)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "move-elastic-ip.conf").write_text(f"# test\nALLOCATION_ID={allocation}\n")
    env: Dict[str, str] = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ENDPOINT_URL": moto_session.url,
                           "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing"}
    counter = Counter()

    def associated() -> str:
        return str(ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0].get("InstanceId", ""))

    for instance in (first, second):  # the active role moves from one host to the other
        hook = StateHook(str(script), 60, "QM1", lambda i=instance: i, counter, base_env=env,  # type: ignore[misc]
                         pass_aws_credentials=True)  # moto wants keys; on EC2 the CLI uses the instance role
        try:
            began = time.monotonic()
            hook.notify("running", "standby", "took over", "active")
            wait_until(lambda: len(counter.results) in (1, 3), 60, "the hook")
            print(f"\nFIGURE Elastic IP hook (AWS CLI against moto) took {time.monotonic() - began:.2f} s")
            hook.notify("standby", "running", "switched over", "standby")  # a no-op for the example
            wait_until(lambda: len(counter.results) in (2, 4), 60, "the no-op")
        finally:
            hook.stop()
        assert associated() == instance
    assert counter.results == ["ok"] * 4, counter.results
