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
- ``stop``: ends the queue manager the way mqguard does: ``endmqm -r -w``
  (an active with a standby listed by ``dspmq -x``: ``-s -w``; a standby:
  ``-x``), escalated to ``-i`` and then ``-p`` after ``stop_timeout``. A
  queue manager that is not running is success (systemd also runs ExecStop
  after the queue manager died).

Stopping never depends on mqguard's configuration: with the file missing or
invalid, ExecStop still ends MQ with endmqm (otherwise systemd would go on to
its KillSignal=SIGKILL of a running queue manager). It needs only where MQ's
commands are and how long ``-w`` may take: what ``start`` used, recorded in
the unit's runtime directory; else those two keys of the configuration,
read alone; else the defaults. The role comes from ``dspmq -x``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Dict, List, Mapping, Optional, Tuple

from mqguard import config as config_mod
from mqguard.base.exitcodes import EX_CONFIG, EX_USAGE
from mqguard.base.runner import CommandRunner
from mqguard.base.untrusted import load_json, read_regular
from mqguard.efs.statedir import allowed_owners
from mqguard.mq.control import (
    STRMQM_ALREADY_RUNNING,
    STRMQM_REPLICA_STARTED,
    STRMQM_STANDBY_STARTED,
    MqControl,
)
from mqguard.mq.leftovers import clear_leftovers
from mqguard.mq.prepare import EXIT_CODES as PREPARE_EXIT_CODES
from mqguard.mq.prepare import PrepareError, preparation_for
from mqguard.mq.service import Role, end_with_escalation
from mqguard.mq.status import QmStatus
from mqguard.mq.unit import PREPARE_TEMPLATE, TEMPLATE, unit_name

log = logging.getLogger("mq-unit")

USAGE = "usage: mq-unit prepare|start|stop QMGR_NAME | mq-unit allows UNIT"
EX_TIMED_OUT = 124  # like timeout(1)
# What ending needs; the start records them in the unit's RuntimeDirectory= for its stop.
END_KEYS: Tuple[Tuple[str, str], ...] = (("queue_manager", "mq_bin_dir"), ("queue_manager", "stop_timeout"),
                                         ("health", "command_timeout"), ("queue_manager", "ha"),
                                         ("native_ha", "quorum_wait"))
END_RECORD = "end.json"


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
        clear_leftovers(control.name, qm.mq_bin_dir, owners=allowed_owners(qm.run_as))
    res = control.run_strmqm(range(256))  # exit 3 (being created elsewhere) is waited for, within start_timeout
    if res.output.strip():
        print(res.output.rstrip(), flush=True)
    if res.timed_out:
        log.error("strmqm %s did not finish within start_timeout (%.0fs)", qm.name, qm.start_timeout)
        return EX_TIMED_OUT
    if res.returncode is None:
        log.error("%s", res.describe())
        return 1
    if res.returncode == STRMQM_STANDBY_STARTED or (qm.native_ha and res.returncode == STRMQM_REPLICA_STARTED):
        return 0
    if res.returncode == STRMQM_ALREADY_RUNNING:
        log.warning("queue manager %s already runs outside this unit: leaving it there (mqguard adopts it)", qm.name)
    return res.returncode


def stop(control: MqControl, quorum_wait: float = 0.0) -> int:
    reading = control.dspmq(instances=True)
    # "status not available" may hide a live instance: let endmqm say for itself
    live = reading.status is not None and (reading.status.live or reading.status == QmStatus.STATUS_NOT_AVAILABLE)
    if reading.ok and not live:
        print(f"queue manager {control.name} is not running here ({reading.status.value if reading.status else ''})",
              flush=True)
        return 0
    # dspmq failing is no reason to leave MQ running: endmqm says for itself. The role (-s, -x or -r) is read from
    # dspmq -x inside the escalation, never from the configuration.
    return 0 if end_with_escalation(control, Role.ACTIVE, control.qm.stop_timeout, quorum_wait) else 1


def record_for_stop(cfg: config_mod.Config, environ: Mapping[str, str]) -> None:
    """What the stop will need, from the configuration the start used (in the unit's runtime directory)."""
    where = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not where.startswith("/"):
        return  # not run by systemd (tests, by hand): the stop reads the configuration's keys alone
    doc = {"mq_bin_dir": cfg.queue_manager.mq_bin_dir, "stop_timeout": cfg.queue_manager.stop_timeout,
           "command_timeout": cfg.health.command_timeout, "ha": cfg.queue_manager.ha,
           "quorum_wait": cfg.native_ha.quorum_wait}
    path = os.path.join(where, END_RECORD)
    try:
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
        os.replace(path + ".tmp", path)
    except OSError as exc:
        log.warning("cannot record the end settings in %s (%s): the stop will read the configuration", where, exc)


def _recorded(environ: Mapping[str, str]) -> Dict[Tuple[str, str], str]:
    """The start's record, as configuration values (empty when there is none or it is not sane)."""
    where = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not where.startswith("/"):
        return {}
    try:
        data, _ = read_regular(os.path.join(where, END_RECORD), 4096, follow=False)
        doc = load_json(data)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out: Dict[Tuple[str, str], str] = {}
    for section, key in END_KEYS:
        value = doc.get(key)
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[(section, key)] = f"{value}s" if isinstance(value, (int, float)) else value
    return out


def end_config(name: str, environ: Mapping[str, str]) -> config_mod.Config:
    """The configuration ending needs, whatever state the files are in: never raises."""
    recorded = _recorded(environ)
    given: Dict[Tuple[str, str], str] = {("queue_manager", "name"): name, **recorded}
    cfg, problems = config_mod.load_keys(config_mod.default_path(dict(environ)), END_KEYS, given)
    for problem in problems:
        if not recorded:
            log.warning("mq-unit stop: %s (ending the queue manager anyway)", problem)
    if recorded:
        log.info("mq-unit stop: using the settings queue manager %s was started with", name)
    return cfg


def allows(unit: str, environ: Mapping[str, str]) -> bool:
    """Whether ``unit`` is mq@ or mq-prepare@ of the queue manager mqguard is configured for (only that key is
    read: a typo elsewhere must not lock mqguard out of its own queue manager's unit)."""
    cfg, problems = config_mod.load_keys(config_mod.default_path(dict(environ)), (("queue_manager", "name"),))
    name = cfg.queue_manager.name
    if not name or any(p.key == "name" for p in problems):
        return False
    return unit in (unit_name(TEMPLATE, name), unit_name(PREPARE_TEMPLATE, name))


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if len(args) != 2 or args[0] not in ("prepare", "start", "stop", "allows"):
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    verb, name = args
    if verb == "stop":  # never refused: a refusal here would make systemd SIGKILL a running queue manager
        cfg = end_config(name, os.environ)
        return stop(_control(cfg), cfg.native_ha.quorum_wait)
    if verb == "allows":  # asked by the polkit rule (as root): is this unit the configured queue manager's?
        print("yes" if allows(name, os.environ) else "no", flush=True)
        return 0
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
    record_for_stop(cfg, os.environ)
    return start(control)


if __name__ == "__main__":
    sys.exit(main())
