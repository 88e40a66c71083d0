"""A storage of known latency for the storage check's test bed: a FUSE passthrough to a directory that sleeps a
set time in every fsync/fdatasync (the point where a write becomes durable, where EFS's round trip shows).
bindfs cannot delay; this small file system (fusepy, libfuse 2) can. Run as a process of its own:

    python -m tests.peers.slowfs BACKING MOUNTPOINT --delay 0.002

and unmounted with ``fusermount -u MOUNTPOINT`` (the ``SlowFs`` helper below does both).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional


def serve(backing: str, mountpoint: str, delay: float) -> None:
    from fuse import FUSE, FuseOSError, Operations  # fusepy: a test dependency (requirements-dev.txt)

    class Passthrough(Operations):  # type: ignore[misc]
        def __init__(self, root: str) -> None:
            self.root = root

        def _p(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def access(self, path: str, mode: int) -> None:
            if not os.access(self._p(path), mode):
                raise FuseOSError(errno.EACCES)

        def chmod(self, path: str, mode: int) -> None:
            os.chmod(self._p(path), mode)

        def chown(self, path: str, uid: int, gid: int) -> None:
            os.chown(self._p(path), uid, gid)

        def getattr(self, path: str, fh: Optional[int] = None) -> Dict[str, Any]:
            st = os.lstat(self._p(path))
            return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
                                                "st_size", "st_uid")}

        def readdir(self, path: str, fh: int) -> List[str]:
            return [".", "..", *os.listdir(self._p(path))]

        def readlink(self, path: str) -> str:
            return os.readlink(self._p(path))

        def mkdir(self, path: str, mode: int) -> None:
            os.mkdir(self._p(path), mode)

        def rmdir(self, path: str) -> None:
            os.rmdir(self._p(path))

        def unlink(self, path: str) -> None:
            os.unlink(self._p(path))

        def symlink(self, name: str, target: str) -> None:
            os.symlink(target, self._p(name))

        def rename(self, old: str, new: str) -> None:
            os.rename(self._p(old), self._p(new))

        def link(self, target: str, name: str) -> None:
            os.link(self._p(name), self._p(target))

        def utimens(self, path: str, times: Any = None) -> None:
            os.utime(self._p(path), times)

        def statfs(self, path: str) -> Dict[str, Any]:
            sv = os.statvfs(self._p(path))
            return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                                "f_files", "f_flag", "f_frsize", "f_namemax")}

        def open(self, path: str, flags: int) -> int:
            return os.open(self._p(path), flags)

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

        def read(self, path: str, length: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, length, offset)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return os.pwrite(fh, data, offset)

        def truncate(self, path: str, length: int, fh: Optional[int] = None) -> None:
            with open(self._p(path), "r+b") as f:
                f.truncate(length)

        def flush(self, path: str, fh: int) -> None:
            pass

        def release(self, path: str, fh: int) -> None:
            os.close(fh)

        def fsync(self, path: str, datasync: int, fh: int) -> None:
            time.sleep(delay)  # the durable write's round trip
            if datasync:
                os.fdatasync(fh)
            else:
                os.fsync(fh)

    FUSE(Passthrough(backing), mountpoint, foreground=True, nothreads=False, fsname="slowfs")


class SlowFs:
    """A slowfs mount for a test: ``start()``, ``path``, ``stop()`` (unmounts; the backing files are the test's)."""

    def __init__(self, base: Path, delay: float) -> None:
        self.backing = base / "slow-backing"
        self.path = base / "slow"
        self.delay = delay
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> SlowFs:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.peers.slowfs", str(self.backing), str(self.path),
                                      "--delay", str(self.delay)], cwd=root, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"slowfs did not mount: {err[-500:]}")
            time.sleep(0.05)
        return self

    def freeze(self) -> None:
        """Every operation on the mount blocks until ``thaw`` (a hung EFS): the FUSE process is stopped."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        if os.path.ismount(self.path):
            subprocess.run(["fusermount", "-u", "-z", str(self.path)], capture_output=True, timeout=10)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


def fio_log_write_ms(directory: Path) -> Dict[str, float]:
    """fio's job for the same pattern: 4 KiB sequential writes, fdatasync after each, one job (p50/p99 of the
    write plus its sync, as mqguard measures the pair)."""
    res = subprocess.run(["fio", "--name=mqlog", f"--directory={directory}", "--rw=write", "--bs=4k",
                          "--fdatasync=1", "--size=64m", "--runtime=5", "--time_based", "--ioengine=sync",
                          "--output-format=json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)["jobs"][0]
    out = {}
    for q, key in ((50, "50.000000"), (99, "99.000000")):
        out[f"p{q}"] = (job["write"]["clat_ns"]["percentile"][key] + job["sync"]["lat_ns"]["percentile"][key]) / 1e6
    out["iops"] = job["write"]["iops"]
    return out


def available() -> str:
    """"" when the test bed can run here, else why not."""
    try:
        import fuse  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"fusepy cannot load libfuse 2 ({exc}); .ci/run installs python fusepy and libfuse2"
    if not shutil.which("fusermount"):
        return "fusermount is missing (Debian package fuse3 or fuse)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--delay", type=float, default=0.002)
    args = parser.parse_args()
    serve(args.backing, args.mountpoint, args.delay)


if __name__ == "__main__":
    main()
