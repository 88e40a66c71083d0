"""Reading every host's record with the history's bounds: at most ``MAX_FILES`` records of at most
``MAX_RECORD`` bytes, each opened without following links or blocking and type checked on its descriptor; a file
that is not a sane record is refused with the reason, never fatal."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import FrozenSet, List

from mqguard.cluster.records import HOSTS_DIR, MAX_RECORD, HostRecord, parse_record
from mqguard.efs.statedir import open_sub_dir

MAX_ENTRIES = 1000  # directory entries looked at; more is someone filling the directory
MAX_FILES = 64  # records read: hosts sharing one queue manager's storage are a handful
FILE_NAME = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9._-]{0,62})\.json$")


@dataclass
class Hosts:
    records: List[HostRecord] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # files refused, with the reason


def read_hosts(storage_path: str, owners: FrozenSet[int], now: float) -> Hosts:
    """Every host's record, by key. OSError when the directory cannot be read (the storage is bad)."""
    out = Hosts()
    try:
        dfd = open_sub_dir(storage_path, owners, HOSTS_DIR, create=False)
    except FileNotFoundError:
        return out  # nobody has written one yet: no hosts, nothing created
    try:
        names: List[str] = []
        with os.scandir(dfd) as entries:
            for seen, entry in enumerate(entries, 1):
                if seen > MAX_ENTRIES:
                    out.problems.append(f"more than {MAX_ENTRIES} entries in .mqguard/{HOSTS_DIR}; the rest not "
                                        "looked at")
                    break
                if FILE_NAME.fullmatch(entry.name):
                    names.append(entry.name)
        names.sort()
        if len(names) > MAX_FILES:
            out.problems.append(f"{len(names)} records in .mqguard/{HOSTS_DIR}; reading the first {MAX_FILES}")
            names = names[:MAX_FILES]
        for name in names:
            try:
                data = _read(dfd, name, owners)
                out.records.append(parse_record(data, name[:-len(".json")], now))
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                out.problems.append(f"{HOSTS_DIR}/{name}: {why[:200]}")
    finally:
        os.close(dfd)
    return out


def _read(dfd: int, name: str, owners: FrozenSet[int]) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, f"not a regular file ({stat.filemode(st.st_mode)})")
        if st.st_uid not in owners:
            raise OSError(0, f"owned by uid {st.st_uid}, not by mqguard")
        if st.st_size > MAX_RECORD:
            raise OSError(0, f"{st.st_size} bytes (a record is at most {MAX_RECORD})")
        return os.pread(fd, MAX_RECORD + 1, 0)[:MAX_RECORD]
    finally:
        os.close(fd)
