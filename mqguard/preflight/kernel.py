"""IBM's kernel parameters for a queue manager on Linux, compared with the running values.

IBM's table (IBM MQ 9.4 documentation, "Configuring and tuning the operating
system on Linux", ibm.com/docs/en/ibm-mq/9.4.x?topic=linux-configuring-tuning-operating-system;
the values ``mqconfig`` checks) gives MINIMUMS: a value is
raised only when the running one is lower, never lowered (RHEL 9's and
AL2023's defaults exceed most of them; reference: Files). ``kernel.sem`` is
four numbers, each a minimum. TCP keepalive is advice, not a requirement,
and the other way round (detect dead client connections within minutes): a
maximum, and only a warning when exceeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

PROC_SYS = "/proc/sys"


@dataclass(frozen=True)
class Param:
    key: str  # sysctl name, e.g. kernel.shmmni
    want: Tuple[int, ...]
    maximum: bool = False  # True: the running value must be at most this
    advice: bool = False  # True: a recommendation (WARN), not one of IBM's minimums (FAIL)


PARAMS: Tuple[Param, ...] = (
    Param("kernel.shmmni", (4096,)),
    Param("kernel.shmall", (2097152,)),
    Param("kernel.shmmax", (268435456,)),
    Param("kernel.sem", (32, 4096, 32, 128)),  # SEMMSL SEMMNS SEMOPM SEMMNI
    Param("fs.file-max", (524288,)),
    Param("kernel.pid_max", (32768,)),
    Param("kernel.threads-max", (32768,)),
    Param("net.ipv4.tcp_keepalive_time", (300,), maximum=True, advice=True),
)


def read(key: str, proc_sys: str = PROC_SYS) -> Optional[Tuple[int, ...]]:
    try:
        with open(os.path.join(proc_sys, *key.split(".")), encoding="ascii") as fh:
            return tuple(int(x) for x in fh.read().split())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Reading:
    param: Param
    current: Optional[Tuple[int, ...]]

    @property
    def ok(self) -> bool:
        if self.current is None or len(self.current) != len(self.param.want):
            return False
        if self.param.maximum:
            return all(c <= w for c, w in zip(self.current, self.param.want))
        return all(c >= w for c, w in zip(self.current, self.param.want))

    @property
    def target(self) -> Tuple[int, ...]:
        """The value to set: IBM's where the running one falls short, the running one elsewhere."""
        if self.current is None or len(self.current) != len(self.param.want):
            return self.param.want
        pick = min if self.param.maximum else max
        return tuple(pick(c, w) for c, w in zip(self.current, self.param.want))


def readings(proc_sys: str = PROC_SYS) -> List[Reading]:
    return [Reading(p, read(p.key, proc_sys)) for p in PARAMS]


def sysctl_file(proc_sys: str = PROC_SYS) -> str:
    """A sysctl.d file that only RAISES what is below IBM's minimums (and lowers keepalive): nothing else."""
    lines = ["# IBM MQ: kernel parameters below IBM's minimums on this host, raised (mqguard preflight).",
             "# Values already above IBM's table are left as the system has them."]
    changes: Dict[str, str] = {}
    for r in readings(proc_sys):
        if not r.ok:
            changes[r.param.key] = " ".join(str(v) for v in r.target)
    lines += [f"{k} = {v}" for k, v in changes.items()] or ["# (nothing to change)"]
    return "\n".join(lines) + "\n"
