"""Issue 27 item 3: the file system in trouble under BOTH hosts of a pair (the FUSE "EFS" frozen under both).

Replacing instances cannot cure EFS: each new one meets the same file system, and MQ on a hard NFS mount, blocked
meanwhile, goes on by itself when EFS answers again. So a host whose storage is bad asks its peer; when the peer's
storage is bad too, neither reports. When the peer does not answer (it is gone, or its mqguard is down), nothing
is known about the file system as a whole and the host reports after the grace period, as it always did (once the
peer has been silent for the bounded wait: probe_timeout + 5 poll intervals + 8 s).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tests.conftest import Harness, free_port, wait_until
from tests.e2e.test_history import own_host, running
from tests.peers.efs import FakeEfs

GRACE = 3.0


@pytest.fixture
def pair(tmp_path: Path, efs: FakeEfs) -> Iterator[Tuple[Harness, Harness]]:
    a = own_host(Harness(tmp_path, efs, host="hostA"), "hostA")
    b = own_host(Harness(tmp_path, efs, host="hostB"), "hostB")
    for h in (a, b):
        h.configure(queue_manager={"multi_instance": "true", "stop_on_exit": "auto"},
                    health={"grace_period": f"{GRACE:g}s", "poll_interval": "0.5s"},
                    storage={"probe_timeout": "1s"},
                    metrics={"listen": f"127.0.0.1:{free_port()}"})
    try:
        a.start()
        wait_until(lambda: running(a), 30, "A active")
        b.start()
        wait_until(lambda: "RUNNING AS STANDBY" in b.dspmq().upper(), 30, "B standby")
        for h, other in ((a, "hostB"), (b, "hostA")):  # each has read the other's record (its address)
            h.wait_log(rf"peers of this queue manager: {other} \(127\.0\.0\.1:\d+\)", timeout=30)
        yield a, b
    finally:
        efs.thaw()
        b.cleanup()
        a.cleanup()


def test_storage_frozen_under_both_hosts_is_not_reported(pair: Tuple[Harness, Harness], efs: FakeEfs) -> None:
    a, b = pair
    marks = (len(a.log_text()), len(b.log_text()))
    efs.freeze()
    frozen = time.monotonic()
    try:
        for h, mark in zip((a, b), marks):
            h.wait_log(r"storage bad on every host: host[AB] .*: the file system itself is in trouble",
                       after=mark, timeout=20)
        time.sleep(3 * GRACE)  # well past the grace period
        for h, mark in zip((a, b), marks):
            since = h.log_text()[mark:]
            assert "-> report_unhealthy" not in since, since[-2000:]
            assert "not reporting while that lasts" in since
        print(f"\nFIGURE EFS frozen under both hosts for {time.monotonic() - frozen:.1f} s (grace {GRACE:g} s): "
              "no report from either")
    finally:
        efs.thaw()
    wait_until(lambda: running(a), 30, "A active again when EFS answers")
    wait_until(lambda: "RUNNING AS STANDBY" in b.dspmq().upper(), 30, "B standby again")


def test_a_peer_that_does_not_answer_leaves_the_report_as_it_was(pair: Tuple[Harness, Harness],
                                                                 efs: FakeEfs) -> None:
    a, b = pair
    b.stop()  # B's mqguard is gone: nobody can say whether the file system is bad everywhere
    mark = len(a.log_text())
    efs.freeze()
    try:
        began = time.monotonic()
        found = a.wait_log(r"-> report_unhealthy", after=mark, timeout=30)
        took = time.monotonic() - began
        assert took >= GRACE - 0.5, took
        assert not re.search(r"storage bad on every host", a.log_text()[mark:found.end()])
        print(f"\nFIGURE EFS frozen, peer silent: reported after {took:.1f} s (grace {GRACE:g} s)")
    finally:
        efs.thaw()
