"""The .mqguard directory on a real FUSE "EFS", probed as an attacker with write access to EFS would.

Issue 16 item 3: each broken .mqguard below made storage count as bad before (and the instance was reported
after the grace period); now the storage verdict is MQ's and .mqguard is reported apart (state_dir_ok).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mqguard.efs.statedir import allowed_owners
from mqguard.efs.storage import PROBE_PREFIX, StorageProber
from mqguard.mq.prepare import CreateLock, PrepareError
from tests.peers.efs import FakeEfs

OWNERS = allowed_owners()


def victim(tmp_path: Path) -> Path:
    """A local file outside EFS that root must never write through a planted link."""
    v = tmp_path / "victim"
    v.write_text("precious\n")
    return v


def test_a_new_state_directory_is_created_writable_by_its_owner_only(efs: FakeEfs) -> None:
    assert StorageProber(efs.path, OWNERS).probe(3.0).ok
    st = os.stat(Path(efs.path, ".mqguard"))
    assert stat.S_IMODE(st.st_mode) & 0o022 == 0 and st.st_uid == os.geteuid()


def test_probe_names_are_unpredictable_and_a_directory_at_the_old_name_changes_nothing(efs: FakeEfs) -> None:
    os.makedirs(Path(efs.path, ".mqguard", f"probe-{os.uname().nodename}-{os.getpid()}"))  # the old, guessable name
    names = set()
    for _ in range(3):
        reading = StorageProber(efs.path, OWNERS).probe(3.0)
        assert reading.ok and reading.state_dir_ok, reading
    for entry in os.listdir(efs.path):
        names.add(entry)
    assert not [n for n in names if n.startswith(PROBE_PREFIX)], "probe files are removed"


def test_state_directory_that_is_a_symlink_is_refused(efs: FakeEfs, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, Path(efs.path, ".mqguard"))
    reading = StorageProber(efs.path, OWNERS).probe(3.0)
    assert reading.ok and reading.state_dir_ok is False and "symbolic link" in reading.state_dir_detail
    assert list(elsewhere.iterdir()) == []


def test_state_directory_owned_by_someone_else_is_refused(efs: FakeEfs) -> None:
    d = Path(efs.path, ".mqguard")
    d.mkdir(mode=0o755)
    os.chown(d, 54321, 54321)
    reading = StorageProber(efs.path, OWNERS).probe(3.0)
    assert reading.ok and reading.state_dir_ok is False and "owned by uid 54321" in reading.state_dir_detail


def test_state_directory_writable_by_others_is_refused(efs: FakeEfs) -> None:
    d = Path(efs.path, ".mqguard")
    d.mkdir()
    os.chmod(d, 0o777)
    reading = StorageProber(efs.path, OWNERS).probe(3.0)
    assert reading.ok and reading.state_dir_ok is False and "lets others write" in reading.state_dir_detail


def test_state_directory_that_is_a_file_is_refused(efs: FakeEfs) -> None:
    Path(efs.path, ".mqguard").write_text("x")
    reading = StorageProber(efs.path, OWNERS).probe(3.0)
    assert reading.ok and reading.state_dir_ok is False and "not a directory" in reading.state_dir_detail


def test_create_lock_never_follows_a_planted_link(efs: FakeEfs, tmp_path: Path) -> None:
    target = victim(tmp_path)
    os.makedirs(Path(efs.path, ".mqguard"), mode=0o755)
    os.symlink(target, Path(efs.path, ".mqguard", "create.lock"))
    with pytest.raises(PrepareError, match="symbolic link"), CreateLock(efs.path, 1.0, OWNERS):
        pass
    assert target.read_text() == "precious\n"


def test_create_lock_refuses_a_fifo(efs: FakeEfs) -> None:
    os.makedirs(Path(efs.path, ".mqguard"), mode=0o755)
    os.mkfifo(Path(efs.path, ".mqguard", "create.lock"))
    with pytest.raises(PrepareError, match="not a regular file"), CreateLock(efs.path, 1.0, OWNERS):
        pass


def test_nothing_is_made_under_a_bare_mount_point(tmp_path: Path) -> None:
    """The chaos soak under load: .mqguard made on the local disk under an unmounted EFS mount point (a check by
    path, then a create by path, raced the unmount), and the next mount was refused. With ``mount_point`` the
    check is made on the root's own descriptor and the directory is created through it; readers make nothing."""
    from mqguard.efs import pause as pause_mod
    from mqguard.efs.statedir import UnsafePath, open_state_dir

    bare = tmp_path / "MQHA"
    bare.mkdir()
    owners = frozenset({os.getuid()})
    with pytest.raises(UnsafePath, match="not mounted"):
        open_state_dir(str(bare), owners, mount_point=True)
    assert pause_mod.read(str(bare), owners) is None
    assert not pause_mod.clear(str(bare), owners)
    assert list(bare.iterdir()) == [], "nothing made under the bare mount point"
    fd = open_state_dir(str(bare), owners)  # without the flag (a plain directory in a test): made as before
    os.close(fd)
    assert (bare / ".mqguard").is_dir()


def test_the_state_directory_is_made_on_a_mounted_file_system(efs: object) -> None:
    from mqguard.efs.statedir import open_state_dir

    path = efs.path  # type: ignore[attr-defined]
    fd = open_state_dir(path, frozenset({os.getuid()}), mount_point=True)
    os.close(fd)
    assert os.path.isdir(os.path.join(path, ".mqguard"))


def test_mqguard_check_makes_no_state_directory(efs: object, tmp_path: Path) -> None:
    """Security round 3 (low): `mqguard check`, documented as side-effect free, made a root-owned .mqguard on a
    fresh EFS, which mqguard (as mqm) then could not use."""
    from mqguard.efs.storage import StorageProber

    path = efs.path  # type: ignore[attr-defined]
    os.makedirs(os.path.join(path, "qmgrs"))
    os.makedirs(os.path.join(path, "logs"))
    probe = StorageProber(path, frozenset({os.getuid()}), (os.path.join(path, "qmgrs"), os.path.join(path, "logs")),
                          mount_point=True, create_state_dir=False).probe(5)
    assert probe.ok and not os.path.exists(os.path.join(path, ".mqguard"))
