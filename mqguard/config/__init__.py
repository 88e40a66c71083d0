"""Configuration: the INI schema, its defaults, parsing and validation.

The schema (schema.py) is the single source of defaults; ``examples/mqguard.conf``
mirrors it (a test keeps the two in step). Every problem in every file is
collected and reported at once, never silently replaced by a default.
"""

from __future__ import annotations

import configparser
import dataclasses
import glob
import grp
import os
import pwd
from typing import Dict, List, Optional, Sequence, Tuple

from mqguard.base.untrusted import read_regular
from mqguard.config import nativeha
from mqguard.config.schema import SCHEMA
from mqguard.config.types import (
    AwsConfig,
    Config,
    ConfigError,
    ConfigProblem,
    ControlConfig,
    HaMode,
    HealthConfig,
    HooksConfig,
    LoggingConfig,
    MetricsConfig,
    NativeHaConfig,
    NativeHaInstance,
    PcfMode,
    QueueManagerConfig,
    ReportMode,
    StopOnExit,
    StorageConfig,
)
from mqguard.config.values import bounded, format_value

__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "SCHEMA",
    "AwsConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ControlConfig",
    "HaMode",
    "HealthConfig",
    "HooksConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NativeHaConfig",
    "NativeHaInstance",
    "PcfMode",
    "QueueManagerConfig",
    "ReportMode",
    "StopOnExit",
    "StorageConfig",
    "config_files",
    "default_path",
    "effective_lines",
    "error_for",
    "load",
    "load_keys",
]

DEFAULT_PATH = "/etc/mqguard/mqguard.conf"
ENV_VAR = "MQGUARD_CONFIG"

MAX_FILE = 1024 * 1024  # a configuration file larger than this is refused
EFS_MIN_HEARTBEAT = 15  # FileLockHeartBeatLen on EFS: IBM support, "IBM MQ: Considerations for EFS on AWS"


def error_for(cfg: Config, section: str, key: str, value: str, expected: str) -> ConfigError:
    """A ConfigError about one key, found after parsing (e.g. the user does not exist)."""
    source = cfg.sources[-1] if cfg.sources else "(config)"
    return ConfigError([ConfigProblem(source, section, key, value, expected)])


def default_path(environ: Optional[Dict[str, str]] = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR) or DEFAULT_PATH


def config_files(path: str) -> List[str]:
    """The main file followed by ``conf.d/*.conf`` of its directory, sorted."""
    conf_d = os.path.join(os.path.dirname(os.path.abspath(path)), "conf.d")
    return [path] + sorted(glob.glob(os.path.join(conf_d, "*.conf")))


def read_file(path: str) -> str:
    """A configuration file's text: a regular file of sane size (a FIFO would hang the reader)."""
    data, _ = read_regular(path, MAX_FILE)
    return data.decode("utf-8")


def _read_raw(files: List[str], problems: List[ConfigProblem]) -> Dict[Tuple[str, str], Tuple[str, str]]:
    """Merge files in order: (section, key) -> (raw value, file it came from)."""
    merged: Dict[Tuple[str, str], Tuple[str, str]] = {}
    for i, path in enumerate(files):
        parser = configparser.ConfigParser(
            interpolation=None,
            inline_comment_prefixes=(";", "#"),
            comment_prefixes=(";", "#"),
            strict=True,
            empty_lines_in_values=False,
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
        try:
            parser.read_string(read_file(path), source=path)
        except FileNotFoundError:
            if i == 0:
                problems.append(ConfigProblem(path, "", "", "", "file not found"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem(path, "", "", "", f"cannot be read: {exc}"))
            continue
        except configparser.Error as exc:
            msg = " ".join(str(exc).split())
            problems.append(ConfigProblem(path, "", "", "", f"is not valid INI: {msg}"))
            continue
        for section in parser.sections():
            if section not in SCHEMA:
                problems.append(
                    ConfigProblem(path, section, "", "", "unknown section; known: " + ", ".join(SCHEMA))
                )
                continue
            for key, value in parser.items(section, raw=True):
                if key not in SCHEMA[section]:
                    known = ", ".join(SCHEMA[section])
                    problems.append(ConfigProblem(path, section, key, value, f"unknown key; known: {known}"))
                    continue
                merged[(section, key)] = (value, path)
    return merged


def load(path: Optional[str] = None) -> Config:
    """Read and validate the configuration; raise ConfigError listing every problem."""
    main_path = path or default_path()
    files = config_files(main_path)
    problems: List[ConfigProblem] = []
    merged = _read_raw(files, problems)
    values: Dict[str, Dict[str, object]] = {}
    for section, options in SCHEMA.items():
        values[section] = {}
        for key, option in options.items():
            raw, source = merged.get((section, key), (option.default, "(default)"))
            try:
                values[section][key] = option.parse(bounded(raw))
            except ValueError as exc:
                file = source if source != "(default)" else main_path
                problems.append(ConfigProblem(file, section, key, raw, f"expected {exc}"))
    if problems:
        raise ConfigError(problems)
    cfg = _with_storage_defaults(_build(values, tuple(f for f in files if os.path.exists(f))))
    cross = _cross_checks(cfg, main_path) + nativeha.problems(
        cfg, main_path, multi_instance_set=("queue_manager", "multi_instance") in merged)
    if cross:
        raise ConfigError(cross)
    return cfg


def load_keys(path: Optional[str], keys: Sequence[Tuple[str, str]],
              given: Optional[Dict[Tuple[str, str], str]] = None) -> Tuple[Config, List[ConfigProblem]]:
    """Only ``keys`` from the files, every other key at its default; never raises.

    For a command that must work whatever else the files hold (ending MQ, pausing at 3 a.m.): a missing file,
    invalid INI, an unknown or invalid key elsewhere cost nothing; a needed key that is invalid keeps its
    default. Returns the configuration and the problems met on the way (the caller says them as warnings).
    ``given`` values (e.g. the queue manager's name from the command line) win over the files. No cross-checks.
    """
    main_path = path or default_path()
    problems: List[ConfigProblem] = []
    merged = _read_raw(config_files(main_path), problems)
    wanted = set(keys)
    for problem in problems:  # a file that is not valid INI as a whole: its well-formed lines still count
        if not problem.section and "not valid INI" in problem.expected:
            for found, value in _scan_lines(problem.file, wanted).items():
                merged.setdefault(found, (value, problem.file))
    problems = [p for p in problems if not p.section or (p.section, p.key) in wanted]  # only what blocks a key
    values: Dict[str, Dict[str, object]] = {}
    for section, options in SCHEMA.items():
        values[section] = {}
        for key, option in options.items():
            raw, source = option.default, "(default)"
            if given and (section, key) in given:
                raw, source = given[(section, key)], "(given)"
            elif (section, key) in wanted and (section, key) in merged:
                raw, source = merged[(section, key)]
            try:
                values[section][key] = option.parse(bounded(raw))
                continue
            except ValueError as exc:
                if source != "(default)":
                    problems.append(ConfigProblem(source, section, key, raw, f"expected {exc}; using the default "
                                                  f"{option.default!r}"))
            try:
                values[section][key] = option.parse(bounded(option.default))
            except ValueError:  # only a required key has no usable default (the caller gives it)
                values[section][key] = ""
    files = tuple(f for f in config_files(main_path) if os.path.exists(f))
    return _with_storage_defaults(_build(values, files)), problems


def _scan_lines(path: str, wanted: set) -> Dict[Tuple[str, str], str]:  # type: ignore[type-arg]
    """The wanted keys of a file configparser refused, line by line: ``[section]`` and ``key = value`` lines
    count, anything else is skipped (the last value of a key wins, as in a valid file)."""
    found: Dict[Tuple[str, str], str] = {}
    try:
        text = read_file(path)
    except (OSError, UnicodeDecodeError):
        return found
    section = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].split("#", 1)[0].strip() if not raw.lstrip().startswith(("#", ";")) else ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif "=" in line and not raw[:1].isspace():
            key, _, value = line.partition("=")
            if (section, key.strip()) in wanted:
                found[(section, key.strip())] = value.strip()
    return found


def _build(values: Dict[str, Dict[str, object]], sources: Tuple[str, ...]) -> Config:
    qm = dict(values["queue_manager"])
    ha = str(qm.get("ha") or "") or (HaMode.MULTI_INSTANCE.value if qm.get("multi_instance") else HaMode.SINGLE.value)
    qm["ha"] = ha
    qm["multi_instance"] = bool(qm.get("multi_instance")) or ha == HaMode.MULTI_INSTANCE.value
    return Config(
        queue_manager=QueueManagerConfig(**qm),  # type: ignore[arg-type]
        storage=StorageConfig(**values["storage"]),  # type: ignore[arg-type]
        health=HealthConfig(**values["health"]),  # type: ignore[arg-type]
        aws=AwsConfig(**values["aws"]),  # type: ignore[arg-type]
        metrics=MetricsConfig(**values["metrics"]),  # type: ignore[arg-type]
        logging=LoggingConfig(**values["logging"]),  # type: ignore[arg-type]
        control=ControlConfig(**values["control"]),  # type: ignore[arg-type]
        hooks=HooksConfig(**values["hooks"]),  # type: ignore[arg-type]
        native_ha=NativeHaConfig(**values["native_ha"]),  # type: ignore[arg-type]
        sources=sources,
    )


def _with_storage_defaults(cfg: Config) -> Config:
    """Data and logs always live on the shared storage (docs/reference.md, data_dir): empty means below it."""
    qm, base = cfg.queue_manager, cfg.storage.path.rstrip("/") or "/"
    return dataclasses.replace(cfg, queue_manager=dataclasses.replace(
        qm, data_dir=qm.data_dir or os.path.join(base, "qmgrs"), log_dir=qm.log_dir or os.path.join(base, "logs")))


def _cross_checks(cfg: Config, file: str) -> List[ConfigProblem]:
    """Rules that involve more than one key."""
    problems: List[ConfigProblem] = []
    qm, st, h = cfg.queue_manager, cfg.storage, cfg.health

    def under_storage(d: str) -> bool:  # strictly below: MQ's directories are made inside it
        return os.path.normpath(d).startswith(st.path.rstrip("/") + "/")

    if qm.run_as:
        try:
            pwd.getpwnam(qm.run_as)
        except KeyError:
            problems.append(ConfigProblem(file, "queue_manager", "run_as", qm.run_as,
                                          "expected an existing user (MQ's commands run as this user)"))
    try:
        grp.getgrnam(cfg.control.group)
    except KeyError:
        problems.append(ConfigProblem(file, "control", "group", cfg.control.group,
                                      "expected an existing group (it may use the control socket)"))
    hook = cfg.hooks.on_state_change
    if hook and not (os.path.isfile(hook) and os.access(hook, os.X_OK)):
        problems.append(ConfigProblem(file, "hooks", "on_state_change", hook, "expected an executable file"))
    for key, value in (("data_dir", qm.data_dir), ("log_dir", qm.log_dir)):
        if not under_storage(value):
            problems.append(
                ConfigProblem(file, "queue_manager", key, value,
                              f"expected a directory below storage.path ({st.path}): the queue manager's data and "
                              "logs must be on the shared storage, or a replacement instance cannot find them")
            )
    if qm.file_lock_heartbeat_len < EFS_MIN_HEARTBEAT and any(t.startswith("nfs") for t in st.fstypes):
        problems.append(ConfigProblem(
            file, "queue_manager", "file_lock_heartbeat_len", str(qm.file_lock_heartbeat_len),
            f"expected at least {EFS_MIN_HEARTBEAT} on NFS/EFS (IBM support, 'IBM MQ: Considerations for EFS on "
            "AWS': lock checks must outlast EFS's 30 s IO timeouts, or a short stall fails the queue manager over)"))
    if h.command_timeout >= qm.start_timeout:
        problems.append(
            ConfigProblem(
                file, "health", "command_timeout", str(h.command_timeout),
                f"expected less than queue_manager.start_timeout ({qm.start_timeout:g}s)",
            )
        )
    if st.probe_timeout > h.grace_period > 0:
        problems.append(
            ConfigProblem(
                file, "storage", "probe_timeout", str(st.probe_timeout),
                f"expected at most health.grace_period ({h.grace_period:g}s)",
            )
        )
    return problems


def effective_lines(cfg: Config) -> List[str]:
    """The effective configuration as INI lines (for --print and the start-up log)."""
    out: List[str] = []
    for section in SCHEMA:
        out.append(f"[{section}]")
        obj = getattr(cfg, section)
        for key, option in SCHEMA[section].items():
            show = option.show or format_value
            out.append(f"{key} = {show(getattr(obj, key))}".ljust(40) + f" ; {option.help}")
        out.append("")
    return out


