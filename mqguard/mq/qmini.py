"""qm.ini, read and written the way MQ's INI files are laid out: ``Stanza:`` lines and indented ``Key=Value``.

Read with bounds (qm.ini lives on the shared storage, written by whoever can write there); written only as a
small input file for ``crtmqm -ii``, which merges its stanzas into the new qm.ini (reference: crtmqm).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

from mqguard.base.untrusted import read_regular

log = logging.getLogger(__name__)

MAX_QM_INI = 1024 * 1024
HEARTBEAT_STANZA, HEARTBEAT_KEY = "TuningParameters", "FileLockHeartBeatLen"
MQGUARD_INI = "zz-mqguard.ini"  # last in name order: crtmqm merges a directory's *.ini files in turn

Stanzas = Dict[str, Dict[str, str]]


def parse(text: str) -> Stanzas:
    """{stanza: {key: value}}; lines that are neither are skipped (MQ's own files hold only these)."""
    out: Stanzas = {}
    current: Optional[Dict[str, str]] = None
    for raw in text.splitlines()[:20000]:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith(":") and "=" not in line:
            current = out.setdefault(line[:-1].strip(), {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return out


def read(data_path: str) -> Stanzas:
    """The queue manager's qm.ini (OSError when it cannot be read safely)."""
    data, _ = read_regular(os.path.join(data_path, "qm.ini"), MAX_QM_INI, follow=False)
    return parse(data.decode("utf-8", "replace"))


def heartbeat(stanzas: Stanzas) -> Optional[int]:
    """FileLockHeartBeatLen, or None when qm.ini does not set it (MQ's default, 10, applies)."""
    value = stanzas.get(HEARTBEAT_STANZA, {}).get(HEARTBEAT_KEY, "")
    return int(value) if value.isdigit() else None


def heartbeat_problem(data_path: str, minimum: int) -> Optional[str]:
    """Why this queue manager's lock heartbeat is below ``minimum`` (None when it is not, or cannot be read)."""
    try:
        value = heartbeat(read(data_path))
    except OSError:
        return None
    if value is not None and value >= minimum:
        return None
    shown = "unset (MQ's default, 10)" if value is None else str(value)
    return (f"{data_path}/qm.ini has {HEARTBEAT_KEY} {shown}, below {minimum}: on EFS a short stall can fail the "
            f"queue manager over (IBM support, 'IBM MQ: Considerations for EFS on AWS'); with the queue manager "
            f"ended, add '{HEARTBEAT_STANZA}:' with '   {HEARTBEAT_KEY}={minimum}' to qm.ini")


def render(stanzas: List[Tuple[str, List[Tuple[str, str]]]]) -> str:
    return "".join(f"{name}:\n" + "".join(f"   {k}={v}\n" for k, v in attrs) for name, attrs in stanzas)


@contextmanager
def crtmqm_input(heartbeat_len: int, operators: Optional[str]) -> Iterator[Optional[str]]:
    """A directory for ``crtmqm -ii``: the operator's own ``-ii`` input (a file, or a directory's *.ini files),
    then mqguard's FileLockHeartBeatLen last, so it wins. None when there is nothing to add (0 and no input).
    Readable by everyone (crtmqm may run as the MQ user while mqguard is root): it holds tuning, no secrets."""
    if heartbeat_len <= 0 and operators is None:
        yield None
        return
    work = tempfile.mkdtemp(prefix="mqguard-crtmqm-")
    try:
        os.chmod(work, 0o755)  # noqa: S103 - crtmqm may run as the MQ user; tuning only, no secrets
        if operators is not None:
            sources = ([os.path.join(operators, n) for n in sorted(os.listdir(operators)) if n.endswith(".ini")]
                       if os.path.isdir(operators) else [operators])
            for n, src in enumerate(sources):
                shutil.copyfile(src, os.path.join(work, f"{n:04d}-{os.path.basename(src)}"))
        if heartbeat_len > 0:
            with open(os.path.join(work, MQGUARD_INI), "w") as fh:
                fh.write(render([(HEARTBEAT_STANZA, [(HEARTBEAT_KEY, str(heartbeat_len))])]))
        for name in os.listdir(work):
            os.chmod(os.path.join(work, name), 0o644)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
