"""Configuration: the INI schema, its defaults, parsing and validation.

The schema below is the single source of defaults; ``examples/mqguard.conf``
mirrors it (a test keeps the two in step). Every problem in every file is
collected and reported at once, never silently replaced by a default.
"""

from __future__ import annotations

import configparser
import enum
import glob
import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, cast

DEFAULT_PATH = "/etc/mqguard/mqguard.conf"
ENV_VAR = "MQGUARD_CONFIG"

_QMGR_NAME = re.compile(r"^[A-Za-z0-9._/%]{1,48}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class StopOnExit(str, enum.Enum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class ReportMode(str, enum.Enum):
    AUTOSCALING = "autoscaling"
    LOG = "log"


class PcfMode(str, enum.Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class QueueManagerConfig:
    name: str
    mq_bin_dir: str
    run_as: str
    create: bool
    data_dir: str
    log_dir: str
    crtmqm_options: Tuple[str, ...]
    mqsc_dir: str
    listener_port: int
    multi_instance: bool
    start_timeout: float
    stop_timeout: float
    stop_on_exit: StopOnExit


@dataclass(frozen=True)
class StorageConfig:
    path: str
    fstypes: Tuple[str, ...]
    mount_timeout: float
    probe_timeout: float


@dataclass(frozen=True)
class HealthConfig:
    poll_interval: float
    grace_period: float
    restart_attempts: int
    command_timeout: float
    report: ReportMode
    respect_asg_grace_period: bool


@dataclass(frozen=True)
class AwsConfig:
    region: str
    endpoint_url: str
    imds_url: str
    termination_hook: str
    launch_hook: str
    asg_name: str


@dataclass(frozen=True)
class MetricsConfig:
    listen: Optional[Tuple[str, int]]  # None when "off"
    pcf: PcfMode
    queues: Tuple[str, ...]


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True)
class Config:
    queue_manager: QueueManagerConfig
    storage: StorageConfig
    health: HealthConfig
    aws: AwsConfig
    metrics: MetricsConfig
    logging: LoggingConfig
    sources: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    section: str
    key: str
    value: str
    expected: str

    def __str__(self) -> str:
        where = f"{self.file}: [{self.section}]" if self.section else self.file
        if self.key:
            where += f" {self.key}"
        value = f" = {self.value!r}" if self.value or self.key else ""
        return f"{where}{value}: {self.expected}"


class ConfigError(Exception):
    """One or more configuration problems; ``str()`` lists all of them."""

    def __init__(self, problems: List[ConfigProblem]) -> None:
        self.problems = problems
        lines = [f"{len(problems)} configuration error(s):"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


def error_for(cfg: Config, section: str, key: str, value: str, expected: str) -> ConfigError:
    """A ConfigError about one key, found after parsing (e.g. the user does not exist)."""
    source = cfg.sources[-1] if cfg.sources else "(config)"
    return ConfigError([ConfigProblem(source, section, key, value, expected)])


# ---------------------------------------------------------------- value parsers
# Each parser takes the raw string and returns the value or raises ValueError
# whose message says what is expected.

Parser = Callable[[str], object]


def parse_duration(raw: str) -> float:
    m = _DURATION.match(raw)
    if not m:
        raise ValueError("a duration such as 500ms, 5s, 2m, 1h or a number of seconds")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _positive_duration(raw: str) -> float:
    value = parse_duration(raw)
    if value <= 0:
        raise ValueError("a duration greater than zero")
    return value


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("a boolean: true/false, yes/no, on/off or 1/0")


def _int_range(lo: int, hi: int) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"an integer from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"an integer from {lo} to {hi}")
        return value

    return parse


def _choice(enum_type: type[enum.Enum]) -> Parser:
    names = [str(m.value) for m in enum_type]

    def parse(raw: str) -> enum.Enum:
        try:
            return enum_type(raw.strip().lower())
        except ValueError:
            raise ValueError("one of " + ", ".join(names)) from None

    return parse


def _words(allowed: Optional[List[str]] = None) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if allowed is not None and value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    return parse


def validate_qmgr_name(name: str) -> str:
    if not _QMGR_NAME.match(name):
        raise ValueError("a queue manager name: 1-48 characters of A-Z a-z 0-9 . / _ %")
    return name


def _required_qmgr_name(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a queue manager name (this key is required)")
    return validate_qmgr_name(raw.strip())


def _abs_path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/"):
        raise ValueError("an absolute path")
    return os.path.normpath(value)


def _optional_abs_path(raw: str) -> str:
    return _abs_path(raw) if raw.strip() else ""


def _user(raw: str) -> str:
    value = raw.strip()
    if value and not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$", value):
        raise ValueError("a user name, or empty for mqguard's own user")
    return value


def _crtmqm_options(raw: str) -> Tuple[str, ...]:
    try:
        words = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"crtmqm arguments in shell-word syntax ({exc})") from None
    for flag in ("-md", "-ld"):
        if flag in words:
            raise ValueError(f"crtmqm arguments without {flag} (set data_dir / log_dir instead)")
    return words


def _fstypes(raw: str) -> Tuple[str, ...]:
    items = tuple(t.strip() for t in raw.split(",") if t.strip())
    if not items or any(not re.match(r"^[a-z0-9._-]+$", t) for t in items):
        raise ValueError("a comma-separated list of file-system types, e.g. nfs4")
    return items


def _url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("an http:// or https:// URL")
    return value.rstrip("/")


def _optional_url(raw: str) -> str:
    return _url(raw) if raw.strip() else ""


def _region(raw: str) -> str:
    value = raw.strip()
    if value and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d+$", value):
        raise ValueError("an AWS region name such as eu-west-1, or empty for instance metadata")
    return value


def _hook_name(raw: str) -> str:
    value = raw.strip()
    if value and not re.match(r"^[A-Za-z0-9\-_/]{1,255}$", value):
        raise ValueError("an Auto Scaling lifecycle hook name (1-255 of A-Z a-z 0-9 - _ /)")
    return value


def _asg_name(raw: str) -> str:
    value = raw.strip()
    if len(value) > 255 or any(ord(c) < 32 for c in value):
        raise ValueError("an Auto Scaling group name (up to 255 printable characters)")
    return value


def parse_listen(raw: str) -> Optional[Tuple[str, int]]:
    value = raw.strip()
    if value.lower() == "off":
        return None
    expected = "host:port (e.g. 0.0.0.0:9157, [::1]:9157) or off"
    if value.startswith("["):
        m = re.match(r"^\[([^\]]+)\]:(\d+)$", value)
    else:
        m = re.match(r"^([^:\s]+):(\d+)$", value)
    if not m:
        raise ValueError(expected)
    host, port = m.group(1), int(m.group(2))
    if not 0 <= port <= 65535:
        raise ValueError(expected)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(expected + "; the host must be an IP address or localhost") from None
    return host, port


def _patterns(raw: str) -> Tuple[str, ...]:
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    for p in items:
        if not re.match(r"^[A-Za-z0-9._/%*?\[\]!-]{1,48}$", p):
            raise ValueError("comma-separated queue-name patterns (fnmatch), e.g. APP.*,DEV.QUEUE.1")
    return items


# ------------------------------------------------------------------ the schema


def _show_listen(value: object) -> str:
    if value is None:
        return "off"
    host, port = cast(Tuple[str, int], value)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _show_words(value: object) -> str:
    return shlex.join(value)  # type: ignore[arg-type]


def _show_list(value: object) -> str:
    return ",".join(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Option:
    default: str
    parse: Parser
    help: str
    show: Optional[Callable[[object], str]] = None


SCHEMA: Dict[str, Dict[str, Option]] = {
    "queue_manager": {
        "name": Option("", _required_qmgr_name, "REQUIRED. 1-48 chars of A-Z a-z 0-9 . / _ %"),
        "mq_bin_dir": Option("/opt/mqm/bin", _abs_path, "where the MQ control commands live"),
        "run_as": Option("mqm", _user, "user the MQ control commands run as; empty = mqguard's own"),
        "create": Option("true", parse_bool, "create the queue manager when no data exists anywhere"),
        "data_dir": Option("", _optional_abs_path, "crtmqm -md / addmqinf DataPath parent"),
        "log_dir": Option("", _optional_abs_path, "crtmqm -ld"),
        "crtmqm_options": Option("", _crtmqm_options, "extra crtmqm arguments, shell-word split", _show_words),
        "mqsc_dir": Option("/etc/mqguard/mqsc.d", _abs_path, "*.mqsc applied after each start"),
        "listener_port": Option("1414", _int_range(0, 65535), "TCP port probed; 0 = no probe"),
        "multi_instance": Option("false", parse_bool, "strmqm -x; standby counts as healthy"),
        "start_timeout": Option("5m", _positive_duration, "longest a start may take"),
        "stop_timeout": Option("60s", _positive_duration, "endmqm -w escalates after this"),
        "stop_on_exit": Option("auto", _choice(StopOnExit), "auto | always | never"),
    },
    "storage": {
        "path": Option("/var/mqm", _abs_path, "must be a mount point (the EFS mount)"),
        "fstypes": Option("nfs4", _fstypes, "accepted file-system types, comma-separated", _show_list),
        "mount_timeout": Option("10m", _positive_duration, "wait for the mount at start-up"),
        "probe_timeout": Option("5s", _positive_duration, "a slower probe counts as bad"),
    },
    "health": {
        "poll_interval": Option("5s", _positive_duration, "one supervision cycle"),
        "grace_period": Option("60s", parse_duration, "how long a bad condition lasts before reporting"),
        "restart_attempts": Option("3", _int_range(0, 1000), "local strmqm attempts per bad episode"),
        "command_timeout": Option("15s", _positive_duration, "query commands slower than this are bad"),
        "report": Option("autoscaling", _choice(ReportMode), "autoscaling | log"),
        "respect_asg_grace_period": Option("true", parse_bool, "ShouldRespectGracePeriod"),
    },
    "aws": {
        "region": Option("", _region, "empty: from instance metadata"),
        "endpoint_url": Option("", _optional_url, "empty: the public regional endpoint"),
        "imds_url": Option("http://169.254.169.254", _url, "instance metadata service"),
        "termination_hook": Option("", _hook_name, "lifecycle hook on EC2_INSTANCE_TERMINATING"),
        "launch_hook": Option("", _hook_name, "lifecycle hook on EC2_INSTANCE_LAUNCHING"),
        "asg_name": Option("", _asg_name, "empty: looked up when a hook needs it"),
    },
    "metrics": {
        "listen": Option("0.0.0.0:9157", parse_listen, "host:port or off", _show_listen),
        "pcf": Option("auto", _choice(PcfMode), "auto | on | off"),
        "queues": Option("*", _patterns, "queue-name patterns for per-queue metrics", _show_list),
    },
    "logging": {
        "level": Option("info", _words(["debug", "info", "warning", "error"]), "log level"),
        "format": Option("text", _words(["text", "json"]), "text | json"),
    },
}


def default_path(environ: Optional[Dict[str, str]] = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR) or DEFAULT_PATH


def config_files(path: str) -> List[str]:
    """The main file followed by ``conf.d/*.conf`` of its directory, sorted."""
    conf_d = os.path.join(os.path.dirname(os.path.abspath(path)), "conf.d")
    return [path] + sorted(glob.glob(os.path.join(conf_d, "*.conf")))


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
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh, source=path)
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
                values[section][key] = option.parse(raw)
            except ValueError as exc:
                file = source if source != "(default)" else main_path
                problems.append(ConfigProblem(file, section, key, raw, f"expected {exc}"))
    if problems:
        raise ConfigError(problems)
    cfg = _build(values, tuple(f for f in files if os.path.exists(f)))
    cross = _cross_checks(cfg, main_path)
    if cross:
        raise ConfigError(cross)
    return cfg


def _build(values: Dict[str, Dict[str, object]], sources: Tuple[str, ...]) -> Config:
    return Config(
        queue_manager=QueueManagerConfig(**values["queue_manager"]),  # type: ignore[arg-type]
        storage=StorageConfig(**values["storage"]),  # type: ignore[arg-type]
        health=HealthConfig(**values["health"]),  # type: ignore[arg-type]
        aws=AwsConfig(**values["aws"]),  # type: ignore[arg-type]
        metrics=MetricsConfig(**values["metrics"]),  # type: ignore[arg-type]
        logging=LoggingConfig(**values["logging"]),  # type: ignore[arg-type]
        sources=sources,
    )


def _cross_checks(cfg: Config, file: str) -> List[ConfigProblem]:
    """Rules that involve more than one key."""
    problems: List[ConfigProblem] = []
    qm, st, h = cfg.queue_manager, cfg.storage, cfg.health

    def under_storage(d: str) -> bool:
        return d == st.path or d.startswith(st.path.rstrip("/") + "/")

    for key, value in (("data_dir", qm.data_dir), ("log_dir", qm.log_dir)):
        if value and not under_storage(value):
            problems.append(
                ConfigProblem(file, "queue_manager", key, value, f"expected a directory under storage.path ({st.path})")
            )
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


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return format_duration(value)
    return str(value)


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    millis = seconds * 1000
    if millis == round(millis):
        return f"{round(millis)}ms"
    return f"{seconds:g}s"
