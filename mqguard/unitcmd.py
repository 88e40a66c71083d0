"""``mq-unit start|stop NAME``: the ExecStart and ExecStop of ``mq@.service``.

systemd runs it as the MQ user, outside mqguard's sandbox, in the queue
manager's own cgroup. It reads mqguard's configuration (``$MQGUARD_CONFIG`` or
the default path), so the unit and the daemon agree on ``mq_bin_dir``,
``multi_instance`` and the timeouts:

- ``start``: ``strmqm [-x] NAME``, bounded by ``start_timeout``; exits with
  strmqm's code, except that "already running" (5) and "standby started" (30)
  are success for systemd;
- ``stop``: ends the queue manager the way mqguard does: ``endmqm -w``
  (multi-instance active: ``-s -w``, standby: ``-x``), escalated to ``-i`` and
  then ``-p`` after ``stop_timeout``. A queue manager that is not running is
  success (systemd also runs ExecStop after the queue manager died).
"""

from __future__ import annotations

import logging
import sys
from typing import List, Optional

from mqguard import config as config_mod
from mqguard.exitcodes import EX_CONFIG, EX_USAGE
from mqguard.mq.control import STRMQM_ALREADY_RUNNING, STRMQM_STANDBY_STARTED, MqControl
from mqguard.mq.runner import CommandRunner
from mqguard.mq.service import end_with_escalation, role_of
from mqguard.mq.status import QmStatus

log = logging.getLogger("mq-unit")

USAGE = "usage: mq-unit start|stop QMGR_NAME"
EX_TIMED_OUT = 124  # like timeout(1)


def _control(cfg: config_mod.Config) -> MqControl:
    # No run_as switch: systemd already runs this as the unit's User=.
    return MqControl(cfg.queue_manager, cfg.storage.path, CommandRunner(), cfg.health.command_timeout)


def start(control: MqControl) -> int:
    qm = control.qm
    res = control.runner.run(control.strmqm_argv(), qm.start_timeout, ok_codes=range(256))
    if res.output.strip():
        print(res.output.rstrip(), flush=True)
    if res.timed_out:
        log.error("strmqm %s did not finish within start_timeout (%.0fs)", qm.name, qm.start_timeout)
        return EX_TIMED_OUT
    if res.returncode is None:
        log.error("%s", res.describe())
        return 1
    if res.returncode in (STRMQM_ALREADY_RUNNING, STRMQM_STANDBY_STARTED):
        return 0
    return res.returncode


def stop(control: MqControl) -> int:
    reading = control.dspmq()
    # "status not available" may hide a live instance: let endmqm say for itself
    live = reading.status is not None and (reading.status.live or reading.status == QmStatus.STATUS_NOT_AVAILABLE)
    if reading.ok and not live:
        print(f"queue manager {control.name} is not running here ({reading.status.value if reading.status else ''})",
              flush=True)
        return 0
    # dspmq failing is no reason to leave MQ running: endmqm says for itself
    role = role_of(reading.status, control.qm.multi_instance)
    return 0 if end_with_escalation(control, role, control.qm.stop_timeout) else 1


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if len(args) != 2 or args[0] not in ("start", "stop"):
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    verb, name = args
    try:
        cfg = config_mod.load(config_mod.default_path())
    except config_mod.ConfigError as exc:
        print(f"mq-unit: {exc}", file=sys.stderr)
        return EX_CONFIG
    if name != cfg.queue_manager.name:
        print(f"mq-unit: this unit is for queue manager {name}, but mqguard is configured for "
              f"{cfg.queue_manager.name} ({', '.join(cfg.sources)})", file=sys.stderr)
        return EX_CONFIG
    control = _control(cfg)
    return start(control) if verb == "start" else stop(control)


if __name__ == "__main__":
    sys.exit(main())
