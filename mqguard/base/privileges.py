"""Reading the shared storage as the MQ user when a command runs as root.

On EFS through the kit's access point root is squashed (it is nobody there) and the queue manager's tree is
mqm's 2770: a command run with sudo reads nothing as root. It should not read as root either: every writer of the
file system controls what is there. A read-only command therefore becomes the MQ user, for good, before it looks.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import signal
import time
from typing import Callable, Optional, Tuple


def drop_to(user: str) -> Optional[str]:
    """Become ``user`` (its groups too) when this process is root and ``user`` is set; the name it now reads
    as, or None when nothing changed. Raises KeyError for a user that does not exist."""
    if os.geteuid() != 0 or not user:
        return None
    pw = pwd.getpwnam(user)
    # what the standard library imports on first use must be loaded while the interpreter's files are still
    # readable (an interpreter under a root-only home, as pyenv's, is not readable to the MQ user)
    import _strptime  # type: ignore[import-not-found]  # noqa: F401  (datetime.strptime's lazy import)
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    return pw.pw_name


def as_user(owner: Optional[Tuple[int, int]], work: Callable[[], Tuple[bool, str]],
            timeout: float = 60.0) -> Tuple[bool, str]:
    """``work()`` as the MQ user: in a child that drops to ``owner`` when this process is root (a check made as
    root proves nothing about what MQ, running as mqm, may do, and root must never act on a path mqm controls),
    in this process otherwise. Bounded: a hung file system costs ``timeout``, then the child is killed."""
    if owner is None or os.geteuid() != 0:
        return work()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(r)
            os.setgroups([owner[1]])
            os.setgid(owner[1])
            os.setuid(owner[0])
            ok, detail = work()
            os.write(w, json.dumps([ok, detail]).encode()[:8192])
        except BaseException as exc:
            os.write(w, json.dumps([False, f"{type(exc).__name__}: {exc}"]).encode()[:8192])
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 8192) if ready else b""
            if not chunk:
                break
            data += chunk
        if not data:
            os.kill(pid, signal.SIGKILL)
            return False, f"no answer within {timeout:.0f}s (a hung file system?)"
        ok, detail = json.loads(data.decode())
        return bool(ok), str(detail)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
