"""Input mqguard does not control: text quoted in logs and reasons, and files read with bounds.

dspmq output, IMDS answers, HTTP requests and files on a shared file system
come from outside. Quoting them escapes control characters and bounds their
length (a log line must not carry a terminal escape or a megabyte); reading a
file refuses anything but a regular file (a FIFO would block the reader) and
anything larger than the caller's limit.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Callable, Optional, Tuple

LOG_LINE = 200  # characters of outside text in one log line


def loggable(text: str, limit: int = LOG_LINE) -> str:
    """Outside text made safe for one log line: control characters escaped, length bounded."""
    text = text.strip()
    safe = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit])
    return safe + (f"… ({len(text)} characters)" if len(text) > limit else "")


def quoted(text: str, limit: int = 80) -> str:
    """``loggable`` in quotes, for a reason that names the offending text."""
    return f"'{loggable(text, limit)}'"


def read_regular(path: str, limit: int, follow: bool = True) -> Tuple[bytes, os.stat_result]:
    """(contents, stat) of a regular file of at most ``limit`` bytes; OSError otherwise.

    ``follow=False`` refuses a symbolic link as the last path component.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file ({stat.filemode(st.st_mode)})")
        if st.st_size > limit:
            raise OSError(f"larger than {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we read
        raise OSError(f"larger than {limit} bytes")
    return data, st


def load_json(text: str | bytes, parse_constant: Optional[Callable[[str], Any]] = None) -> Any:
    """``json.loads`` for outside input: ValueError for anything malformed, including nesting deep enough
    to make the parser recurse past Python's limit (a RecursionError no caller expects)."""
    try:
        return json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None

