"""Warm pools (section 15) and on_state_change hooks through a running mqguard (section 14)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

from tests.conftest import Harness, free_port, wait_until
from tests.peers.aws import FaultProxy
from tests.peers.imds import ImdsServer

LIFECYCLE = "meta-data/autoscaling/target-lifecycle-state"


def get(h: Harness, path: str) -> int:
    return h.get(path)[0]


def status(h: Harness) -> Dict[str, Any]:
    return dict(json.loads(h.get("/status")[1]))


def launch_completions(proxy: FaultProxy) -> List[str]:
    return [p["LifecycleHookName"] for p in proxy.lifecycle if p["Action"] == "CompleteLifecycleAction"]


def test_warm_pool_instance_is_prepared_but_mq_is_not_started_until_in_service(
    harness: Harness, aws: FaultProxy, imds: ImdsServer
) -> None:
    h = harness
    imds.paths[LIFECYCLE] = "Warmed:Pending"
    h.configure(health={"report": "autoscaling", "grace_period": "5s"},
                aws={"endpoint_url": aws.url, "imds_url": imds.url, "launch_hook": "mq-launch"},
                metrics={"listen": f"127.0.0.1:{free_port()}"})
    h.start()
    h.wait_log(r"QM1: warm", timeout=20)
    wait_until(lambda: launch_completions(aws) == ["mq-launch"], 20, "the launch hook (warm)")
    assert get(h, "/healthz") == 503 and get(h, "/active") == 503
    time.sleep(2)
    for cmd in ("crtmqm", "addmqinf", "strmqm", "runmqsc", "endmqm"):
        assert h.calls(cmd) == [], f"{cmd} ran on a warm-pool instance"
    assert status(h)["summary"].startswith("warm pool: queue manager QM1 not started here")
    assert status(h)["state"] == "warm"
    imds.paths[LIFECYCLE] = "Warmed:Stopped"  # the group stops it; nothing changes for mqguard
    time.sleep(1)
    assert h.calls("strmqm") == []
    in_service = time.monotonic()
    imds.paths[LIFECYCLE] = "InService"
    h.wait_log(r"QM1: running", timeout=30)
    print(f"\nFIGURE warm -> InService in IMDS to queue manager running: {time.monotonic() - in_service:.2f} s")
    assert [c["argv"] for c in h.calls("strmqm")] == [["QM1"]] and len(h.calls("crtmqm")) == 1
    wait_until(lambda: launch_completions(aws) == ["mq-launch", "mq-launch"], 20, "the launch hook again")


HOOK = """#!/bin/sh
echo "$1 $2 $3 $MQGUARD_ROLE" >> "$(dirname "$0")/transitions"
[ "$1" = "recovering" ] && exec sleep 60
[ "$1" = "starting" ] && exit 4
exit 0
"""


def test_hooks_run_off_the_loop_in_order_slow_ones_killed_failures_counted(harness: Harness, tmp_path: Path) -> None:
    h = harness
    hook = tmp_path / "hook"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    h.configure(hooks={"on_state_change": str(hook), "timeout": "3s"},
                metrics={"listen": f"127.0.0.1:{free_port()}"}, health={"grace_period": "30s"})
    h.start()
    h.wait_log(r"QM1: running", timeout=30)
    wait_until(lambda: "running starting QM1 active" in (tmp_path / "transitions").read_text(), 10, "the running hook")
    lines = (tmp_path / "transitions").read_text().splitlines()
    assert lines[-1] == "running starting QM1 active"
    h.knob("strmqm.delay", "5")  # the restart takes a while: the state stays recovering/starting
    os.kill(h.controllers()[0], signal.SIGKILL)
    h.wait_log(r"QM1: recovering", timeout=10)
    before = int(status(h)["cycles"])
    time.sleep(3.5)  # the hook sleeps meanwhile (60 s): the loop must not
    assert int(status(h)["cycles"]) - before >= 2, "the loop kept its cadence (1 s) while a hook ran"
    h.wait_log(r"on_state_change .* recovering running: killed after 3s", timeout=20)
    h.unknob("strmqm.delay")
    h.wait_log(r"QM1: running", after=h.log_text().index("QM1: recovering"), timeout=30)
    port = h.sections["metrics"]["listen"].rsplit(":", 1)[1]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    counts = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("mqguard_hook_runs_total{")}
    assert counts["timeout"] >= 1 and counts["failed"] >= 1 and counts["ok"] >= 1, counts
