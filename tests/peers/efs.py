"""A FUSE mount (bindfs) standing in for EFS; it can be frozen like a dead NFS server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Optional

FSTYPE = "fuse"


def available() -> Optional[str]:
    """None when bindfs mounts can work here, else why not."""
    if not shutil.which("bindfs"):
        return "bindfs is not installed"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    return None


class FakeEfs:
    def __init__(self, root: str) -> None:
        self.src = os.path.join(root, "efs-backing")
        self.path = os.path.join(root, "efs")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.path, exist_ok=True)
        self.pid: Optional[int] = None
        self.frozen = False

    def mount(self) -> FakeEfs:
        # -f keeps bindfs in the foreground so we own its PID (to freeze it).
        proc = subprocess.Popen(
            ["bindfs", "-f", "-o", "allow_other", self.src, self.path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid = proc.pid
        self._proc = proc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.mounted():
                return self
            if proc.poll() is not None:
                raise RuntimeError(f"bindfs exited with {proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("bindfs mount did not appear")

    def mounted(self) -> bool:
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == self.path for line in fh if len(line.split()) > 4)

    def freeze(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.pid is not None and self.frozen:
            os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def unmount(self) -> None:
        self.thaw()
        if self.mounted():
            subprocess.run(["fusermount", "-u", "-z", self.path], capture_output=True, timeout=10)
            if self.mounted():
                subprocess.run(["umount", "-l", self.path], capture_output=True, timeout=10)
        if self.pid is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self.pid = None
