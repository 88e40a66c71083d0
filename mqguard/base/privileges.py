"""Reading the shared storage as the MQ user when a command runs as root.

On EFS through the kit's access point root is squashed (it is nobody there) and the queue manager's tree is
mqm's 2770: a command run with sudo reads nothing as root. It should not read as root either: every writer of the
file system controls what is there. A read-only command therefore becomes the MQ user, for good, before it looks.
"""

from __future__ import annotations

import os
import pwd
from typing import Optional


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
