"""``mqguard check``: one observation of each aspect, no side effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from mqguard.base.exitcodes import EX_DEGRADED, EX_OK, EX_UNHEALTHY
from mqguard.base.runner import CommandRunner
from mqguard.config import Config
from mqguard.efs.statedir import allowed_owners
from mqguard.efs.storage import MOUNTINFO, StorageProber, check_mount, mount_check
from mqguard.mq.control import MqControl
from mqguard.mq.listener import probe_listener
from mqguard.mq.status import QmStatus, counts_healthy

OK, BAD, NOT_YET = "ok", "BAD", "starting"


@dataclass(frozen=True)
class Line:
    aspect: str
    verdict: str
    detail: str

    def __str__(self) -> str:
        return f"{self.aspect:<14} {self.verdict:<8} {self.detail}"


def run_check(cfg: Config, runner: CommandRunner, mountinfo: str = MOUNTINFO) -> List[Line]:
    lines: List[Line] = []
    st = cfg.storage
    qm = cfg.queue_manager
    mount = check_mount(st.path, st.fstypes, mountinfo)
    storage_ok = False
    if mount.ok:
        # it only looks: no .mqguard is made (as root, one would belong to root and lock the daemon out)
        probe = StorageProber(st.path, allowed_owners(qm.run_as), (qm.data_dir, qm.log_dir),
                              mounted=mount_check(st.path, st.fstypes, mountinfo), mount_point=True,
                              create_state_dir=False).probe(st.probe_timeout)
        detail = f"{mount.detail}; probe {probe.seconds * 1000:.1f} ms" if probe.ok and probe.seconds else probe.detail
        storage_ok = probe.ok
        lines.append(Line("storage", OK if probe.ok else BAD, detail))
    else:
        lines.append(Line("storage", BAD, mount.detail))
    if not storage_ok:  # as the daemon: MQ's commands would only hang on (or wrongly judge) bad storage
        lines.append(Line("queue manager", BAD, f"{qm.name}: not checked while storage is bad"))
        lines.append(Line("listener", BAD, f"127.0.0.1:{qm.listener_port} not probed (storage is bad)"))
        return lines
    reading = MqControl(qm, st.path, runner, cfg.health.command_timeout).dspmq()
    status = reading.status
    qm_verdict = (OK if counts_healthy(status, qm.multi_instance, qm.native_ha)
                  else NOT_YET if status == QmStatus.STARTING else BAD)
    if status is None:
        lines.append(Line("queue manager", BAD, f"{qm.name}: {reading.error}"))
    else:
        lines.append(Line("queue manager", qm_verdict, f"{qm.name} {status.value}"))
    if qm.listener_port <= 0:
        lines.append(Line("listener", OK, "not probed (listener_port = 0)"))
    elif status != QmStatus.RUNNING:
        lines.append(Line("listener", qm_verdict,
                          f"127.0.0.1:{qm.listener_port} not probed (queue manager not active here)"))
    else:
        up = probe_listener(qm.listener_port)
        lines.append(Line("listener", OK if up else BAD, f"127.0.0.1:{qm.listener_port} "
                          + ("accepts connections" if up else "refuses or does not answer")))
    return lines


def exit_code(lines: List[Line]) -> int:
    if any(line.verdict == BAD for line in lines):
        return EX_UNHEALTHY
    if any(line.verdict == NOT_YET for line in lines):
        return EX_DEGRADED
    return EX_OK


# Monitoring plugins' exit codes (Nagios, Icinga, Sensu, ...): the reverse of the contract's 1 and 2.
NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3
_NAGIOS_WORD = {NAGIOS_OK: "OK", NAGIOS_WARNING: "WARNING", NAGIOS_CRITICAL: "CRITICAL", NAGIOS_UNKNOWN: "UNKNOWN"}


def nagios(lines: List[Line], qmgr: str) -> tuple[int, List[str]]:
    """(plugin exit code, output): one status line with performance data after '|', then one line per aspect."""
    code = {EX_UNHEALTHY: NAGIOS_CRITICAL, EX_DEGRADED: NAGIOS_WARNING}.get(exit_code(lines), NAGIOS_OK)
    worst = [line for line in lines if line.verdict != OK]
    said = "; ".join(f"{line.aspect} {line.verdict}: {line.detail}" for line in worst) if worst else next(
        (line.detail for line in lines if line.aspect == "queue manager"), qmgr)
    perf = ""
    for line in lines:
        if line.aspect == "storage" and "probe " in line.detail and line.detail.endswith(" ms"):
            perf = f" | storage_probe_ms={line.detail.rsplit('probe ', 1)[1][:-3]}ms"
    head = f"MQGUARD {_NAGIOS_WORD[code]} - {said if said.startswith(qmgr) else f'{qmgr}: {said}'}"
    return code, [head[:400] + perf, *(str(line) for line in lines)]


def nagios_unknown(why: str) -> tuple[int, List[str]]:
    return NAGIOS_UNKNOWN, [f"MQGUARD UNKNOWN - {why.splitlines()[0][:300]}", *why.splitlines()[1:]]
