"""Security round 3, HIGH 3 and MEDIUM 4: one writer of the shared EFS must not exhaust any host's memory.

60 files of 4 MiB of compact, valid history lines planted in ``.mqguard/history``: the daemon reads what its
metrics need bounded in total (bytes and events, newest files first), off the thread that writes this host's
events; ``mqguard history`` is bounded the same way and says it truncated. Figures are printed as FIGURE.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Tuple

from mqguard.history.events import iso
from tests.conftest import Harness, free_port, wait_until
from tests.peers.efs import FakeEfs

FILES, FILE_BYTES = 60, 4 * 1024 * 1024


def plant(history: Path, now: float) -> Tuple[int, int]:
    """FILES files of FILE_BYTES of the most compact valid lines (crash/good pairs: episodes to group)."""
    history.mkdir(parents=True, exist_ok=True)
    lines = 0
    for n in range(FILES):
        chunks = []
        size = 0
        t = now - 86400 + n
        while size < FILE_BYTES:
            for event in ("crash", "good"):
                line = json.dumps({"time": iso(t), "event": event}, separators=(",", ":")) + "\n"
                chunks.append(line)
                size += len(line)
                t += 0.001
        (history / f"planted-{n:02d}.jsonl").write_text("".join(chunks))
        lines += len(chunks)
    return lines, FILES * FILE_BYTES


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def test_planted_history_files_cost_the_daemon_bounded_memory_and_never_its_health_endpoint(
        tmp_path: Path, efs: FakeEfs) -> None:
    h = Harness(tmp_path, efs)
    port = free_port()
    h.configure(metrics={"listen": f"127.0.0.1:{port}"}, logging={"level": "info"})
    lines, size = plant(Path(efs.src) / ".mqguard" / "history", time.time())
    try:
        h.start()
        h.wait_log(r"QM1: running", timeout=60)
        worst = 0.0
        def read_done() -> bool:
            nonlocal worst
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                assert resp.status == 200
            worst = max(worst, time.monotonic() - started)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return b"mqguard_last_episode_outage_seconds{" in resp.read()
        wait_until(read_done, 120, "the episode summary read from the planted history", interval=0.2)
        assert h.proc is not None
        rss = peak_rss_mib(h.proc.pid)
        print(f"\nFIGURE daemon with {FILES} planted history files ({size // 2**20} MiB, {lines} lines): peak RSS "
              f"{rss:.0f} MiB, slowest /healthz {worst * 1000:.0f} ms")
        assert rss <= 200, f"peak RSS {rss:.0f} MiB"
        assert worst < 1.0
        assert "history: read" in h.log_text() and "truncated" in h.log_text()
    finally:
        h.cleanup()


def test_mqguard_history_on_planted_files_is_bounded_and_says_it_truncated(tmp_path: Path, efs: FakeEfs) -> None:
    h = Harness(tmp_path, efs)
    h.configure()
    plant(Path(efs.src) / ".mqguard" / "history", time.time())
    started = time.monotonic()
    res = h.cli("history", "--config", str(h.conf), "--json", timeout=120)
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    advice = h.cli("history", "--config", str(h.conf), "--advise", "--hook-timeout", "15m", timeout=120)
    print(f"\nFIGURE mqguard history --json on {FILES} planted files of 4 MiB: {took:.1f} s, "
          f"{len(doc['events'])} events kept; --advise {advice.returncode}")
    assert took < 60
    assert doc["truncated"], "the output says what it left out"
    assert advice.returncode == 0, advice.stderr[-2000:]
