"""``mqguard list`` (contract section 27) on a simulated multi-instance pair sharing one FUSE "EFS": each host's
mqguard keeps its record current; the list shows both, one active; a host that stopped writing is shown stale,
not removed; unreadable storage exits 2."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Tuple

from mqguard import __version__
from mqguard.cluster.records import HostRecord
from tests.conftest import Harness, wait_until
from tests.e2e.test_history import own_host, pair, running  # noqa: F401 - the pair fixture
from tests.peers.efs import FakeEfs


def listing(h: Harness) -> Tuple[int, Dict[str, Any]]:
    res = h.cli("list", "--config", str(h.conf), "--json")
    assert res.returncode in (0, 1), res.stderr
    doc: Dict[str, Any] = json.loads(res.stdout)
    return res.returncode, doc


def test_a_pair_is_listed_with_one_active_and_one_standby(pair: Tuple[Harness, Harness]) -> None:  # noqa: F811
    a, b = pair

    def both() -> Any:
        code, doc = listing(a)
        roles = sorted((h["host"], h["role"]) for h in doc["hosts"])
        return (code, doc) if roles == [("hostA", "active"), ("hostB", "standby")] else None
    code, doc = wait_until(both, 20, "both hosts in mqguard list")  # type: ignore[misc]
    assert code == 0
    first = doc["hosts"][0]
    assert first["host"] == "hostA" and first["state"] == "running" and first["qmgr_status"] == "running"
    assert set(first) == {"host", "instance_id", "az", "state", "role", "qmgr_status", "paused_until", "last_seen",
                          "age_seconds", "stale", "version", "mq_level"}
    assert first["version"] == __version__ and first["stale"] is False and first["paused_until"] is None
    assert first["last_seen"].endswith("Z") and first["age_seconds"] < 15
    assert doc["hosts"][1]["state"] == "standby" and doc["hosts"][1]["qmgr_status"] == "running_as_standby"
    text = a.cli("list", "--config", str(a.conf))
    assert text.returncode == 0 and "OK: one active instance" in text.stdout, text.stdout
    assert text.stdout.index("hostA") < text.stdout.index("hostB"), "the active host first"
    # a pause shows on every host's line: it is on the shared storage
    assert a.cli("pause", "--config", str(a.conf), "--for", "10m", "--reason", "list test").returncode == 0
    wait_until(lambda: all(h["paused_until"] for h in listing(a)[1]["hosts"]), 20, "the pause in both records")
    # ... and the pair's status starts with the cluster's lines
    status = b.cli("status", "--config", str(b.conf))
    head = status.stdout.splitlines()[:4]
    assert any("hostA" in line and "active" in line for line in head), (status.stdout, status.stderr)


def test_a_host_that_stopped_writing_is_shown_stale_not_removed(tmp_path: Path, efs: FakeEfs) -> None:
    h = own_host(Harness(tmp_path, efs, host="hostA"), "hostA")
    h.configure(health={"grace_period": "4s"})
    try:
        h.start()
        wait_until(lambda: running(h), 30, "running")
        wait_until(lambda: listing(h)[1]["hosts"], 20, "this host's record")
        # a host that went quiet ten minutes ago (its record as its mqguard wrote it, then nothing)
        gone = HostRecord(host="hostB", instance_id="", az="", qmgr="QM1", state="standby", role="standby",
                          qmgr_status="running_as_standby", paused_until=None, last_seen=time.time() - 600,
                          version=__version__, mq_level=None, storage_ok=True, storage_detail="", address="",
                          poll_interval=1.0)
        (Path(efs.path) / ".mqguard" / "hosts" / "hostB.json").write_text(gone.line())
        code, doc = listing(h)
        stale = {x["host"]: x["stale"] for x in doc["hosts"]}
        assert stale == {"hostA": False, "hostB": True} and code == 1
        text = h.cli("list", "--config", str(h.conf))
        assert text.returncode == 1 and "STALE" in text.stdout and "hostB stale: not seen for 10m" in text.stdout
        # a planted file that is no record is refused with the reason, never fatal
        (Path(efs.path) / ".mqguard" / "hosts" / "evil.json").write_text('{"host": "evil"')
        os.symlink("/etc/shadow", Path(efs.path) / ".mqguard" / "hosts" / "link.json")
        text = h.cli("list", "--config", str(h.conf))
        assert "refused: hosts/evil.json" in text.stdout and "refused: hosts/link.json" in text.stdout, text.stdout
        assert text.returncode == 1
    finally:
        h.cleanup()


def test_unreadable_storage_exits_2(tmp_path: Path, efs: FakeEfs) -> None:
    h = Harness(tmp_path, efs)
    nowhere = tmp_path / "nowhere"
    h.configure(storage={"path": str(nowhere)},
                queue_manager={"data_dir": f"{nowhere}/qmgrs", "log_dir": f"{nowhere}/logs"})
    res = h.cli("list", "--config", str(h.conf))
    assert res.returncode == 2 and "cannot read" in res.stderr, res.stderr
