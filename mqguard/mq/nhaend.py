"""Ending a Native HA instance (contract section 28; ../shared/reference/mq-native-ha.md section 6).

IBM: ``endmqm -s`` on the active hands over to a replica; ``endmqm -x`` ends a replica; "a check is performed to
see if stopping the specified instance breaks the group's quorum, and the command fails if it does". The exit code
of that refusal is not documented, so mqguard decides from ``dspmq -o nativeha -x`` before each step, never from
the code: while ending this instance would leave a single running instance (or the active has no replica in sync
to hand over to), it waits, bounded by ``quorum_wait``, saying why; the caller heart-beats the termination hook
meanwhile. Every step escalates as every end does (``-w``, then ``-i``, then ``-p``), keeping ``-s`` on the
active and ``-x`` on a replica.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, List, Optional, Tuple

from mqguard.mq.control import ENDMQM_NO_QMGR, ENDMQM_NOT_RUNNING, MqControl
from mqguard.mq.nativeha import NhaStatus

log = logging.getLogger(__name__)

STEP = 30.0  # each escalation step after the first
QUORUM_POLL = 2.0  # how often a wait for quorum looks again


def quorum_reason(nha: Optional[NhaStatus]) -> str:
    """Pure: why this instance must not be ended now ("" when it may). Unknown status: it may (endmqm's own
    check is still there; waiting on nothing would only delay the end)."""
    if nha is None:
        return ""
    running = nha.running_instances()
    if running == 2:
        others = [i.name for i in nha.instances if i.name != nha.instance and not i.linked]
        return (f"ending instance {nha.instance} would break the Native HA group's quorum: 2 of 3 instances run "
                f"({', '.join(others) or 'one'} down); waiting for it to return")
    if nha.role == "active" and running == 3 and not any(
            i.insync for i in nha.instances if i.name != nha.instance):
        return f"active instance {nha.instance} has no replica in sync to hand over to; waiting for one to catch up"
    return ""


def steps(role: str, stop_timeout: float) -> List[Tuple[List[str], float]]:
    """endmqm's options for this instance's role: -s on the active (hand over), -x on a replica or an instance
    with no role yet; -w then -i then -p."""
    keep = ["-s"] if role == "active" else ["-x"]
    return [(keep + ["-w"], stop_timeout), (keep + ["-i"], STEP), (keep + ["-p"], STEP)]


def end_native_ha(control: MqControl, stop_timeout: float, quorum_wait: float,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """End this host's Native HA instance; True when it is not running any more."""
    waited_until = clock() + quorum_wait
    said = ""
    step = 0
    for _ in range(100_000):  # bounded by quorum_wait and the escalation's steps
        reading = control.dspmq()
        if reading.status is not None and not reading.status.live:
            log.info("Native HA instance of %s is not running (%s)", control.name, reading.status.value)
            return True
        nha, _why = control.nativeha()
        reason = quorum_reason(nha)
        if reason:
            if clock() >= waited_until:
                log.error("%s: quorum_wait (%.0fs) is over: the instance is left running and goes away with this "
                          "host, without a clean end", reason, quorum_wait)
                return False
            if reason != said:
                said = reason
                log.warning("%s (up to %.0fs more; [native_ha] quorum_wait)", reason, waited_until - clock())
            sleep(QUORUM_POLL)
            continue
        plan = steps(nha.role if nha is not None else "unknown", stop_timeout)
        if step >= len(plan):
            return False
        mode, timeout = plan[step]
        res = control.endmqm(mode, timeout)
        if res.ok((0,)) or res.returncode in (ENDMQM_NOT_RUNNING, ENDMQM_NO_QMGR):
            log.info("Native HA instance of %s ended (endmqm %s)", control.name, " ".join(mode))
            return True
        log.warning("endmqm %s did not end %s: %s; looking again", " ".join(mode), control.name, res.describe())
        step += 1
    return False
