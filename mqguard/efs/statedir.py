"""mqguard's own directory on EFS, ``<storage.path>/.mqguard``, opened safely.

EFS is shared by every instance that mounts it, and anyone who can write to it
could plant a symlink where mqguard (possibly root) is about to write. So every
file in the directory is opened relative to a directory file descriptor, with
``O_NOFOLLOW``; the directory itself must be a real directory (not a link),
owned by root, mqguard's own user or the MQ user, and writable by its owner
only. mqguard creates it with mode 0755. A refusal says why in words; it is
mqguard's own problem (``state_dir_ok``), never a verdict on MQ's storage.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import stat
from typing import FrozenSet, Iterable, Optional

log = logging.getLogger(__name__)

STATE_DIR = ".mqguard"
DIR_MODE = 0o755


class UnsafePath(OSError):
    """The state directory or a file in it is not what mqguard may safely use."""


def allowed_owners(run_as: str = "") -> FrozenSet[int]:
    """root, mqguard's own user and the MQ user (when it exists)."""
    owners = {0, os.geteuid()}
    if run_as:
        try:
            owners.add(pwd.getpwnam(run_as).pw_uid)
        except KeyError:
            pass  # the config check reports a missing user; it owns nothing here
    return frozenset(owners)


def _describe_open_error(path: str, exc: OSError, dir_fd: Optional[int] = None, name: str = "") -> str:
    if exc.errno == errno.ENOTDIR and dir_fd is not None:
        # O_DIRECTORY|O_NOFOLLOW on a link says ENOTDIR: look, so the reason is exact
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return f"refusing {path}: it is a symbolic link"
        except OSError:
            pass
    if exc.errno == errno.ELOOP:
        return f"refusing {path}: it is a symbolic link"
    if exc.errno == errno.ENOTDIR:
        return f"refusing {path}: it is not a directory"
    return f"cannot open {path}: {exc.strerror or exc}"


def open_state_dir(storage_path: str, owners: Iterable[int], mount_point: bool = False, create: bool = True) -> int:
    """A directory fd for ``<storage_path>/.mqguard``, created if missing (FileNotFoundError when ``create`` is
    false: a reader makes nothing); raises UnsafePath.

    ``mount_point``: the storage must be mounted, judged on the descriptor of its root (a file system of its own:
    another device than its parent's) and everything is then made through that descriptor. Checking the mount
    first and creating by path after would race an unmount: ``.mqguard`` would land on the local disk under the
    bare mount point, and the next mount of the EFS would be refused (found by the chaos soak under load)."""
    path = os.path.join(storage_path, STATE_DIR)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    root = os.open(storage_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if mount_point and not _is_mount_root(root, storage_path):
        os.close(root)
        raise UnsafePath(errno.ENOENT, f"{storage_path} is not mounted: nothing is made under its bare mount point")
    try:
        try:
            fd = os.open(STATE_DIR, flags, dir_fd=root)
        except FileNotFoundError:  # first use on this file system: one more round trip, once
            if not create:
                raise
            try:
                os.mkdir(STATE_DIR, DIR_MODE, dir_fd=root)
            except FileExistsError:
                pass  # another instance made it meanwhile
            fd = os.open(STATE_DIR, flags, dir_fd=root)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not create:
            raise
        raise UnsafePath(exc.errno or errno.EPERM, _describe_open_error(path, exc, root, STATE_DIR)) from None
    finally:
        os.close(root)
    problem = _check_dir(os.fstat(fd), path, frozenset(owners))
    if problem:
        os.close(fd)
        raise UnsafePath(errno.EPERM, problem)
    return fd


def open_sub_dir(storage_path: str, owners: FrozenSet[int], name: str, create: bool = True,
                 mount_point: bool = False) -> int:
    """A directory fd for ``.mqguard/<name>`` (created 0755 when ``create``), checked like the state directory;
    FileNotFoundError when it does not exist and ``create`` is false (a reader makes nothing on the storage)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    if create:
        parent = open_state_dir(storage_path, owners, mount_point=mount_point)
    else:
        parent = os.open(os.path.join(storage_path, STATE_DIR), flags)
    try:
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, DIR_MODE, dir_fd=parent)
            except FileExistsError:
                pass
            fd = os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not create:
            raise
        raise UnsafePath(exc.errno or errno.EPERM, f"cannot open {STATE_DIR}/{name}: "
                         f"{'it is a symbolic link' if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc}") from None
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if st.st_uid not in owners or st.st_mode & 0o022:
        os.close(fd)
        raise UnsafePath(errno.EPERM, f"refusing {STATE_DIR}/{name}: owner uid {st.st_uid} or mode "
                                      f"{stat.S_IMODE(st.st_mode):04o} is not what mqguard made")
    return fd


def _is_mount_root(fd: int, path: str) -> bool:
    """Whether the directory open as ``fd`` is the root of a file system mounted at ``path``."""
    parent = os.path.dirname(os.path.abspath(path).rstrip("/")) or "/"
    try:
        return os.fstat(fd).st_dev != os.stat(parent).st_dev
    except OSError:
        return False


def _check_dir(st: os.stat_result, path: str, owners: FrozenSet[int]) -> Optional[str]:
    if not stat.S_ISDIR(st.st_mode):
        return f"refusing {path}: it is not a directory"
    if st.st_uid not in owners:
        return (f"refusing {path}: owned by uid {st.st_uid}, expected one of {sorted(owners)} "
                "(root, mqguard's user or the MQ user)")
    if st.st_mode & 0o022:
        return f"refusing {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others write (expected 0755 or stricter)"
    return None


def create_exclusive(dir_fd: int, name: str, mode: int = 0o600) -> int:
    """Open a new file ``name`` for read/write; never follows or reuses what is already there.

    A leftover of ours (same host and pid, after a crash) or anything planted
    under the name is removed first (unlinking a symlink removes the link, not
    its target), then the file is created with O_EXCL.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(name, dir_fd=dir_fd)
        return os.open(name, flags, mode, dir_fd=dir_fd)


def open_regular(dir_fd: int, name: str, mode: int = 0o644) -> int:
    """Open (creating if needed) a regular file ``name`` for read/write without following links."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise UnsafePath(exc.errno or errno.EPERM, _describe_open_error(name, exc, dir_fd, name)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(errno.EPERM, f"refusing {name}: it is not a regular file")
    return fd


class StateDirStatus:
    """Whether .mqguard is usable, as the last storage probe found; logged once per change, never MQ's storage
    verdict (docs/reference.md, /status state_dir_ok)."""

    def __init__(self) -> None:
        self.ok: Optional[bool] = None
        self.detail = "not checked yet"

    def update(self, ok: Optional[bool], detail: str) -> None:
        if ok is None or (ok, detail) == (self.ok, self.detail):
            return
        was, self.ok, self.detail = self.ok, ok, detail
        if ok and was is False:
            log.info("mqguard's directory on EFS is usable again: %s", detail)
        elif not ok:
            log.error("mqguard's own directory on EFS is unusable: %s; pause, create lock and history are off until "
                      "it is fixed; the queue manager's storage is fine and nothing is reported for this", detail)
