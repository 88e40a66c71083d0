"""Command line: run, check, status, list, validate-config, preflight, pause, resume, switchover, drill, history,
--version.

Exit codes (contract): 0 ok/healthy; 1 unhealthy or runtime error; 2 degraded
or starting; 64 usage error; 78 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, NoReturn, Optional

from mqguard import __version__
from mqguard import config as config_mod
from mqguard.base.exitcodes import EX_CONFIG, EX_OK, EX_UNHEALTHY, EX_USAGE
from mqguard.supervisor.model import Drill

log = logging.getLogger("mqguard")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mqguard", description="Supervisor for an IBM MQ queue manager on EC2 with EFS.")
    parser.add_argument("--version", action="version", version=f"mqguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", metavar="PATH", help=f"configuration file (default ${config_mod.ENV_VAR} "
                       f"or {config_mod.DEFAULT_PATH}); conf.d/*.conf beside it is read after it")
        return p

    add("run", "run the daemon in the foreground")
    check = add("check", "one-shot health check of storage, queue manager and listener (no side effects)")
    check.add_argument("--nagios", action="store_true",
                       help="as a monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one status line")
    status = add("status", "ask the running daemon for its view (HTTP /status)")
    status.add_argument("--json", action="store_true", help="print the /status JSON document")
    validate = add("validate-config", "check the configuration and exit")
    validate.add_argument("--print", action="store_true", help="print the effective configuration")
    pause = add("pause", "pause supervision for maintenance (stored on EFS; always expires)")
    pause.add_argument("--for", dest="duration", metavar="DURATION", default="1h",
                       help="how long (e.g. 30m, 2h; default 1h, at most [control] pause_max)")
    pause.add_argument("--reason", metavar="TEXT", default="", help="why (shown in status, logs and metrics)")
    add("resume", "end a pause: supervision starts again from a clean slate")
    pre = add("preflight", "check this host for IBM MQ with mqguard: PASS/WARN/FAIL, each with its fix")
    pre.add_argument("--image", action="store_true",
                     help="only what an image build can check (no configuration, mount or queue manager needed)")
    pre.add_argument("--write-sysctl", metavar="FILE",
                     help="write a sysctl.d file that raises only the kernel parameters below IBM's minimums, and exit")
    pre.add_argument("--storage", action="store_true",
                     help="measure the mounted storage the way MQ uses it: log writes, locks, metadata, and on AWS the "
                          "file system's throughput mode and burst credits (bounded by --seconds; writes only its own "
                          "files under .mqguard/)")
    pre.add_argument("--seconds", metavar="N", default="30",
                     help="with --storage: how long to measure (default 30, at most 300)")
    pre.add_argument("--json", action="store_true", help="with --storage: one JSON document")
    pre.add_argument("--path", metavar="DIR",
                     help="with --storage: measure DIR instead of the configured storage (an image build's scratch "
                          "directory; no configuration needed)")
    pre.add_argument("--proc-sys", default="/proc/sys", help=argparse.SUPPRESS)  # tests: a simulated host
    pre.add_argument("--mountinfo", default="/proc/self/mountinfo", help=argparse.SUPPRESS)
    switch = add("switchover", "multi-instance: hand the active instance to the standby on the other host")
    switch.add_argument("--force", action="store_true", help="without a running standby (MQ is then down)")
    switch.add_argument("--yes", action="store_true", help="do not ask (scripts); without it, mqguard says what "
                                                            "it will do and asks")
    drill = add("drill", "inject a failure on this host for a failover test (marked in the history)")
    drill.add_argument("kind", choices=[d.value for d in Drill],
                       help="crash: kill -9 of amqzxma0; stop: endmqm -i, treated as a failure; "
                            "unhealthy: report this instance Unhealthy now")
    drill.add_argument("--yes", action="store_true", help="do not ask")
    lst = add("list", "every host sharing this storage: role, state, queue manager, pause, last seen (exit 0: "
                      "one active instance, nothing stale or failed)")
    lst.add_argument("--json", action="store_true", help='{"hosts": [...]}')
    hist = add("history", "every host's supervision events on EFS as episodes: phases, durations, outage")
    hist.add_argument("--since", metavar="DURATION", help="only events of the last DURATION (e.g. 24h, 7d)")
    hist.add_argument("--json", action="store_true", help="one JSON document (events, episodes, starts)")
    hist.add_argument("--advise", action="store_true", help="recommended settings, each with its observation")
    hist.add_argument("--asg-grace", metavar="DURATION", help="with --advise: the group's health-check grace period")
    hist.add_argument("--hook-timeout", metavar="DURATION", help="with --advise: the lifecycle hooks' timeout")
    return parser


def _load(path: Optional[str]) -> config_mod.Config:
    return config_mod.load(path or config_mod.default_path())


_CLUSTER = (("storage", "path"), ("storage", "fstypes"), ("queue_manager", "run_as"), ("queue_manager", "name"),
            ("health", "poll_interval"), ("queue_manager", "ha"), ("queue_manager", "mq_bin_dir"),
            ("health", "command_timeout"))
_CONTROL = (("control", "socket"), ("control", "group"), ("queue_manager", "name"))
# What each operator's command reads: a problem elsewhere in the files (a typo made at 3 a.m.) is a warning for it,
# never exit 78 - the daemon refuses such a file on its next start or reload, the operator is not locked out now.
COMMAND_KEYS = {
    "status": (("metrics", "listen"), ("queue_manager", "multi_instance"), *_CLUSTER),
    "list": _CLUSTER,
    "history": (*_CLUSTER, ("health", "grace_period"), ("health", "restart_attempts"),
                ("queue_manager", "start_timeout"), ("queue_manager", "stop_timeout"), ("queue_manager", "lock_wait")),
    "pause": _CONTROL, "resume": _CONTROL, "switchover": _CONTROL, "drill": _CONTROL,
}


def _load_for(path: Optional[str], command: str) -> config_mod.Config:
    """The configuration for an operator's command: the whole of it when it is valid; else only the keys the
    command needs (an error only when one of those is bad), the rest said as a warning."""
    try:
        return _load(path)
    except config_mod.ConfigError as exc:
        needed = COMMAND_KEYS[command]
        cfg, problems = config_mod.load_keys(path, needed)
        blocking = [p for p in problems if (p.section, p.key) in needed]
        if blocking:
            raise config_mod.ConfigError(blocking) from None
        print(f"mqguard: warning: the configuration has problems not needed by `{command}` (the daemon refuses "
              "it on its next start or reload until they are fixed; `mqguard validate-config` lists them):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return cfg


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        return EX_USAGE
    try:
        if args.command == "validate-config":
            return cmd_validate(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "preflight":
            return cmd_preflight(args)
        from mqguard.serve.control import OPERATIONS

        if args.command in OPERATIONS:
            from mqguard.cli.control import run_control

            return run_control(_load_for(args.config, args.command), args)
        if args.command == "status":
            from mqguard.cli.status import run_status

            return run_status(_load_for(args.config, "status"), args.json)
        if args.command == "list":
            from mqguard.cli.cluster import run_list
            from mqguard.cli.nhalist import run_nha_list

            cfg = _load_for(args.config, "list")
            return run_nha_list(cfg, args.json) if cfg.queue_manager.native_ha else run_list(cfg, args.json)
        if args.command == "history":
            from mqguard.cli.history import run_history

            return run_history(_load_for(args.config, "history"), args)
    except config_mod.ConfigError as exc:
        print(f"mqguard: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return EX_UNHEALTHY
    return EX_USAGE


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if args.print:
        print("\n".join(config_mod.effective_lines(cfg)).rstrip())
    else:
        print(f"configuration OK ({', '.join(cfg.sources)})")
    return EX_OK


def cmd_check(args: argparse.Namespace) -> int:
    from mqguard.base import logsetup
    from mqguard.cli import check as checks
    from mqguard.mq.commands import build_runner

    if args.nagios:  # a plugin never exits 78 or 1 for "cannot tell": that is UNKNOWN
        try:
            cfg = _load(args.config)
            logsetup.setup("warning", cfg.logging.format)
            code, out = checks.nagios(checks.run_check(cfg, build_runner(cfg)), cfg.queue_manager.name)
        except Exception as exc:  # config errors, a host that cannot run the check: the plugin cannot tell
            code, out = checks.nagios_unknown(str(exc) or type(exc).__name__)
        print("\n".join(out))
        return code
    cfg = _load(args.config)
    logsetup.setup("warning", cfg.logging.format)
    lines = checks.run_check(cfg, build_runner(cfg))
    for line in lines:
        print(line)
    return checks.exit_code(lines)


def cmd_preflight(args: argparse.Namespace) -> int:
    from mqguard.preflight import kernel
    from mqguard.preflight.checks import Host
    from mqguard.preflight.run import exit_code, render, run_preflight

    if args.write_sysctl:
        text = kernel.sysctl_file(args.proc_sys)
        with open(args.write_sysctl, "w", encoding="ascii") as fh:
            fh.write(text)
        print(text, end="")
        return EX_OK
    if args.storage:
        from mqguard.cli.storage import run_storage_check

        return run_storage_check(None if args.path else _load(args.config), args)
    cfg = None if args.image else _load(args.config)
    findings = run_preflight(cfg, Host(proc_sys=args.proc_sys, mountinfo=args.mountinfo), image=args.image)
    print(render(findings))
    return exit_code(findings)


def cmd_run(args: argparse.Namespace) -> int:
    from mqguard.cli.run import Service

    path = args.config or config_mod.default_path()
    cfg = config_mod.load(path)
    try:
        return Service(cfg, path).run()
    except config_mod.ConfigError:
        raise
    except OSError as exc:  # e.g. the metrics port is taken
        log.error("mqguard cannot start: %s", exc)
        return EX_UNHEALTHY
    except Exception:
        log.exception("mqguard failed")
        return EX_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
