"""Multi-instance queue manager: two simulated hosts, one EFS, two mqguards.

The active instance's amqzxma0 holds the lock in the data directory; the
standby's blocks on it. Killing the active lets the standby take over, as MQ does.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tests.conftest import Harness
from tests.peers.efs import FakeEfs


@pytest.fixture
def pair(tmp_path: Path, efs: FakeEfs) -> Iterator[Tuple[Harness, Harness]]:
    a, b = Harness(tmp_path, efs, host="hostA"), Harness(tmp_path, efs, host="hostB")
    for h in (a, b):
        h.configure(queue_manager={"multi_instance": "true", "stop_on_exit": "auto"},
                    health={"grace_period": "20s"})
    try:
        yield a, b
    finally:
        b.cleanup()
        a.cleanup()


def mqsc_applies(h: Harness) -> int:
    log = Path(h.efs.src, "qmgrs", "QM1", "mqsc.log")
    return log.read_text().count("DEFINE QLOCAL(APP.Q)") if log.exists() else 0


def test_active_standby_takeover_and_new_standby(pair: Tuple[Harness, Harness]) -> None:
    a, b = pair
    (a.mqsc_dir / "10-app.mqsc").write_text("DEFINE QLOCAL(APP.Q) REPLACE\n")
    a.start()
    a.wait_log(r"QM1: running", timeout=30)
    assert [c["argv"] for c in a.calls("strmqm")] == [["-x", "QM1"]]
    b.start()
    b.wait_log(r"QM1: standby\n", timeout=30)  # the verdict, not "QM1: standby instance started"
    assert b.calls("crtmqm") == [] and b.calls("addmqinf"), "host B registers the existing queue manager"
    assert "RUNNING AS STANDBY" in b.dspmq()
    assert mqsc_applies(a) == 1, "MQSC only on the active instance"

    killed = time.monotonic()
    os.kill(a.controllers()[0], signal.SIGKILL)
    took_over = b.wait_log(r"took over as active; applying MQSC", timeout=20)
    b.wait_log(r"QM1: running", after=b.log_text().index("QM1: standby\n"), timeout=20)
    b.wait_log(r"applied MQSC .*10-app.mqsc", after=took_over.end(), timeout=20)
    print(f"\nFIGURE standby takeover seen by mqguard: {time.monotonic() - killed:.2f} s")
    assert mqsc_applies(a) == 2, "MQSC re-applied after the takeover"
    # host A now sees RUNNING ELSEWHERE: its standby is missing, so it starts one
    a.wait_log(r"QM1: standby", timeout=20)
    assert [c["argv"] for c in a.calls("strmqm")][-1] == ["-x", "QM1"]
    assert "RUNNING AS STANDBY" in a.dspmq()
    assert "instance is unhealthy" not in a.log_text() + b.log_text()

    # stopping the standby's mqguard on a host that is not going away leaves it alone
    assert a.stop() == 0
    assert "leaving queue manager QM1 as it is" in a.log_text()
    assert b.stop() == 0
