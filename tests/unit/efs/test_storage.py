"""Mount detection and the storage probe, against a real FUSE mount that can be frozen."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from mqguard.efs.storage import StorageProber, check_mount, parse_mountinfo
from tests.peers.efs import FakeEfs

SAMPLE = (
    "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    "40 27 0:45 / /var/mqm rw,relatime shared:20 - nfs4 fs-0123.efs.eu-west-1.amazonaws.com:/ rw,vers=4.1\n"
    "41 27 0:46 / /with\\040space rw - tmpfs tmpfs rw\n"
    "42 27 0:47 / /var/mqm rw - tmpfs over rw\n"
)


def test_parse_mountinfo_fields_and_escapes() -> None:
    entries = parse_mountinfo(SAMPLE)
    assert entries[1].mount_point == "/var/mqm" and entries[1].fstype == "nfs4"
    assert entries[1].source.startswith("fs-0123.efs")
    assert entries[2].mount_point == "/with space"


def test_check_mount_uses_the_top_mount_and_checks_fstype(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(SAMPLE)
    # /var/mqm is over-mounted by tmpfs: the top mount counts
    r = check_mount("/var/mqm", ("nfs4",), str(mi))
    assert not r.ok and "tmpfs" in r.detail
    mi.write_text(SAMPLE.splitlines(True)[1])
    assert check_mount("/var/mqm/", ("nfs4",), str(mi)).ok
    r = check_mount("/MQHA", ("nfs4",), str(mi))
    assert not r.ok and "not a mount point" in r.detail
    assert not check_mount("/var/mqm", ("nfs4",), str(tmp_path / "missing")).ok


def test_probe_on_real_fuse_mount(efs: FakeEfs) -> None:
    assert check_mount(efs.path, ("fuse",)).ok
    assert not check_mount(efs.path, ("nfs4",)).ok
    reading = StorageProber(efs.path).probe(10.0)  # generous: a busy machine's fsync may be slow
    assert reading.ok and reading.seconds is not None and reading.seconds < 10.0
    assert list(Path(efs.src, ".mqguard").iterdir()) == []  # the probe files are removed
    assert not [p for p in Path(efs.src).iterdir() if p.name.startswith(".mqguard-probe-")]


def test_frozen_mount_times_out_and_never_piles_up(efs: FakeEfs) -> None:
    prober = StorageProber(efs.path)
    assert prober.probe(2.0).ok
    before = threading.active_count()
    efs.freeze()
    try:
        start = time.monotonic()
        first = prober.probe(0.3)
        assert not first.ok and "did not finish within" in first.detail
        assert time.monotonic() - start < 5  # the probe's 0.3 s, never the freeze
        for _ in range(5):
            again = prober.probe(0.3)
            assert not again.ok and "still stuck" in again.detail
        assert threading.active_count() <= before + 1, "more than one probe thread outstanding"
        assert prober.outstanding
    finally:
        efs.thaw()
    deadline = time.monotonic() + 5
    while prober.outstanding and time.monotonic() < deadline:
        time.sleep(0.02)
    assert prober.probe(2.0).ok


def test_probe_failure_on_unwritable_storage(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    (target / ".mqguard").write_text("not a directory")
    reading = StorageProber(str(target)).probe(2.0)
    assert reading.ok and not reading.state_dir_ok and "not a directory" in reading.state_dir_detail
    (target / "logs").write_text("a file where MQ's log directory should be")
    reading = StorageProber(str(target), dirs=(str(target / "logs"), str(target / "missing"))).probe(2.0)
    assert reading.ok, "only existing directories are MQ's: before they exist the storage path is probed"


def test_nothing_is_written_under_a_mount_point_that_went_away(tmp_path: Path) -> None:
    """The mount was checked, then EFS went away before the probe wrote: the probe must not write to the local
    disk under the mount point (a soak run found a remount refused: "mountpoint is not empty")."""
    reading = StorageProber(str(tmp_path), mounted=lambda: False).probe(2.0)
    assert not reading.ok and "no longer mounted" in reading.detail
    assert list(tmp_path.iterdir()) == []


def test_the_probe_writes_where_mq_writes_once_the_queue_manager_is_known(tmp_path: Path) -> None:
    """Security round 3 MEDIUM 5: the probe wrote in qmgrs/ and logs/, which a running queue manager never writes;
    made read-only, they got a healthy host reported (Unhealthy decided in 6 s while MQ ran)."""
    from mqguard.efs.storage import probe_targets

    parents = [str(tmp_path / "qmgrs"), str(tmp_path / "logs")]
    own = [str(tmp_path / "qmgrs" / "QM1"), str(tmp_path / "logs" / "QM1")]
    assert probe_targets(str(tmp_path), parents, own) == [str(tmp_path)], "nothing yet: the storage path"
    for d in parents:
        os.mkdir(d)
    assert probe_targets(str(tmp_path), parents, own) == parents, "before a create: the parents"
    for d in own:
        os.mkdir(d)
    assert probe_targets(str(tmp_path), parents, own) == own, "once known: the queue manager's own directories"
