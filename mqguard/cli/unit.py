"""``mq-unit prepare|start|stop NAME``: the ExecStart/ExecStop of ``mq@.service`` and ``mq-prepare@.service``.

systemd runs it as the MQ user, outside mqguard's sandbox, in the queue
manager's own cgroup. It reads mqguard's configuration (``$MQGUARD_CONFIG`` or
the default path), so the unit and the daemon agree on ``mq_bin_dir``,
``multi_instance`` and the timeouts:

- ``prepare`` (mq-prepare@.service, a oneshot): crtmqdir when MQ's root is
  empty, then addmqinf or (under the create lock) crtmqm -md -ld -p, with MQ's
  setgid directories and IBM's limits; exit 0 known, 10 registered, 11 created;
- ``start``: clears what a crashed instance left (SIGKILL), then ``strmqm
  [-x] NAME``, bounded by ``start_timeout``; exits with strmqm's code, except
  that "standby started" (30) is success for systemd. "Already running" (5)
  is NOT success: the queue manager then runs outside this unit, systemd would
  find no main process and run ExecStop, ending the queue manager that mqguard
  is about to adopt; a failed start runs no ExecStop;
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
from mqguard.base.exitcodes import EX_CONFIG, EX_USAGE
from mqguard.base.runner import CommandRunner
from mqguard.mq.control import STRMQM_ALREADY_RUNNING, STRMQM_STANDBY_STARTED, MqControl
from mqguard.mq.leftovers import clear_leftovers
from mqguard.mq.prepare import EXIT_CODES as PREPARE_EXIT_CODES
from mqguard.mq.prepare import PrepareError, preparation_for
from mqguard.mq.service import end_with_escalation, role_of
from mqguard.mq.status import QmStatus

log = logging.getLogger("mq-unit")

USAGE = "usage: mq-unit prepare|start|stop QMGR_NAME"
EX_TIMED_OUT = 124  # like timeout(1)


def _control(cfg: config_mod.Config) -> MqControl:
    # No run_as switch: systemd already runs this as the unit's User=.
    return MqControl(cfg.queue_manager, cfg.storage.path, CommandRunner(), cfg.health.command_timeout)


def prepare(control: MqControl, cfg: config_mod.Config) -> int:
    try:
        # mqguard starts this unit only with the storage good; the unit itself RequiresMountsFor= it
        done = preparation_for(cfg.queue_manager.create, cfg.queue_manager.start_timeout, control).run()
    except PrepareError as exc:
        log.error("cannot prepare queue manager %s: %s", control.name, exc)
        return EX_TIMED_OUT if exc.timed_out else 1
    except OSError as exc:
        log.error("cannot prepare queue manager %s: storage error: %s", control.name, exc)
        return 1
    print(f"queue manager {control.name}: {done.value} (data in {control.data_path})", flush=True)
    return PREPARE_EXIT_CODES[done]


def start(control: MqControl) -> int:
    qm = control.qm
    reading = control.dspmq()
    if reading.status is not None and not reading.status.live:
        clear_leftovers(control.name, qm.mq_bin_dir)
    res = control.runner.run(control.strmqm_argv(), qm.start_timeout, ok_codes=range(256))
    if res.output.strip():
        print(res.output.rstrip(), flush=True)
    if res.timed_out:
        log.error("strmqm %s did not finish within start_timeout (%.0fs)", qm.name, qm.start_timeout)
        return EX_TIMED_OUT
    if res.returncode is None:
        log.error("%s", res.describe())
        return 1
    if res.returncode == STRMQM_STANDBY_STARTED:
        return 0
    if res.returncode == STRMQM_ALREADY_RUNNING:
        log.warning("queue manager %s already runs outside this unit: leaving it there (mqguard adopts it)", qm.name)
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
    if len(args) != 2 or args[0] not in ("prepare", "start", "stop"):
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
    if verb == "prepare":
        return prepare(control, cfg)
    return start(control) if verb == "start" else stop(control)


if __name__ == "__main__":
    sys.exit(main())
