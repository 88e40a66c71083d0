#!/usr/bin/env python3
"""make bench, Native HA: failover figures with three simulated hosts and real processes (tests/sim/nha.py).

Heartbeats at IBM's minimum (500 ms, timeout 1 s); each host its own FUSE storage, its own simulator and its own
`mqguard run`. Measures, over N rounds each: kill -9 of the active's execution controller until some host's
/active answers 200 again (and whether the active moved), with mqguard's immediate restart and with a restart
slower than HeartbeatTimeout; kill -9 of a replica until its instance runs again and
until it is back in sync (/standby 200); then one rolling restart of all three - each replica's host stopped
(`systemctl stop mqguard` with stop_on_exit = always: endmqm -x) and started again, the active last by
`mqguard switchover` - while a poller asks every host's /active every 20 ms: the client-visible gaps (no host
serving) are counted and timed. Prints medians and maxima. Loopback only; everything is stopped and unmounted.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.nha_support import NAMES, Trio  # noqa: E402
from tests.peers import efs as efs_mod  # noqa: E402


def wait(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def summary(name: str, samples: List[float]) -> str:
    return (f"{name}: median {statistics.median(samples):.2f} s, max {max(samples):.2f} s "
            f"(n = {len(samples)})")


class GapWatch:
    """Asks every host's /active every 20 ms; a gap is a stretch with no host answering 200."""

    def __init__(self, t: Trio) -> None:
        self.t = t
        self.gaps: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GapWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        since: Optional[float] = None
        while not self._stop.is_set():
            serving = any(self.t.code(n, "/active") == 200 for n in NAMES)
            now = time.monotonic()
            if not serving and since is None:
                since = now
            elif serving and since is not None:
                self.gaps.append(now - since)
                since = None
            self._stop.wait(0.02)


def settle(t: Trio) -> str:
    try:
        return str(wait(t.settled, 60, "one active serving and two replicas in sync"))
    except RuntimeError as exc:
        said = "; ".join(f"{n}: {t.status(n).get('summary', '(no answer)')}" for n in NAMES)
        raise RuntimeError(f"{exc}: {said}") from None


def kill_active(t: Trio, slow_restart: bool = False) -> Tuple[float, bool]:
    old = settle(t)
    for n in NAMES:  # a restart slower than HeartbeatTimeout (as with IBM's defaults and a real start-up) or not
        t.h[n].knob("nha.start_delay", "2") if slow_restart else t.h[n].unknob("nha.start_delay")
    began = time.monotonic()
    t.kill_mq(old)
    wait(lambda: t.code(old, "/active") != 200, 10, "the killed active no longer /active")
    serving = str(wait(lambda: next(iter(t.active()), None), 60, "an active serving again"))
    return time.monotonic() - began, serving != old


def kill_replica(t: Trio) -> Tuple[float, float]:
    active = settle(t)
    victim = next(n for n in NAMES if n != active)
    began = time.monotonic()
    t.kill_mq(victim)
    wait(lambda: t.status(victim).get("qmgr_status") != "replica", 10, "the replica seen down")
    wait(lambda: t.status(victim).get("qmgr_status") in ("replica", "negotiating"), 60, "its instance running")
    running = time.monotonic() - began
    wait(lambda: t.code(victim, "/standby") == 200, 60, "back in sync")
    return running, time.monotonic() - began


def rolling_restart(t: Trio) -> Tuple[List[float], float]:
    active = settle(t)
    with GapWatch(t) as watch:
        began = time.monotonic()
        for n in [m for m in NAMES if m != active]:  # the replicas first, one at a time
            t.h[n].stop(signal.SIGTERM)  # stop_on_exit = always: endmqm -x
            t.h[n].start()
            wait(lambda n=n: t.code(n, "/standby") == 200, 90, f"{n} back in sync")  # type: ignore[misc]
        res = t.h[active].cli("switchover", "--yes", "--config", str(t.h[active].conf), timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"switchover: {res.stdout}{res.stderr}")
        settle(t)
        took = time.monotonic() - began
    return watch.gaps, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="rounds of each kill")
    args = parser.parse_args()
    why = efs_mod.available()
    if why:
        print(f"Native HA bench skipped: {why}")
        return 0
    t = Trio(Path(tempfile.mkdtemp(prefix="mqguard-bench-nha-")))
    try:
        for n in NAMES:
            # many kills in a few minutes: above the restart budget a host would (rightly) be reported
            t.configure(n, queue_manager={"stop_on_exit": "always"}, logging={"level": "info"},
                        health={"restart_limit": "100", "restart_attempts": "100"})
        t.start()
        settle(t)
        failovers = [kill_active(t) for _ in range(args.n)]
        slow = [kill_active(t, slow_restart=True) for _ in range(args.n)]
        for n in NAMES:
            t.h[n].unknob("nha.start_delay")
        replicas = [kill_replica(t) for _ in range(args.n)]
        gaps, took = rolling_restart(t)
    finally:
        t.cleanup()
    print("\nNative HA, three simulated hosts (HeartbeatInterval 500 ms, HeartbeatTimeout 1 s; IBM's defaults are "
          "5 s and 10 s: on real MQ the election waits that much longer)")
    print(summary("kill -9 of the active -> /active 200 on a host", [s for s, _ in failovers])
          + f"; the active moved to another instance in {sum(m for _, m in failovers)} of {len(failovers)} "
          "(else the restarted instance, its log as good as any, was elected again)")
    print(summary("the same, its restart taking 2 s (longer than HeartbeatTimeout)", [s for s, _ in slow])
          + f"; moved to another instance in {sum(m for _, m in slow)} of {len(slow)}")
    print(summary("kill -9 of a replica -> its instance running again", [r for r, _ in replicas]))
    print(summary("kill -9 of a replica -> back in sync (/standby 200)", [s for _, s in replicas]))
    print(f"rolling restart of all three (replicas first, the active last by switchover): {took:.1f} s, "
          f"{len(gaps)} client-visible gap(s) " + (f"of {', '.join(f'{g:.2f} s' for g in gaps)}" if gaps else ""))
    return 0 if len(gaps) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
