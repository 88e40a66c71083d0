"""Parsers for configuration values: each takes the raw text and returns the
value, or raises ValueError whose message says what is expected.

Every value is bounded: in length (a megabyte of crtmqm options or a NUL byte
in a path is refused at load time, not met later), and in range (a duration of
400 nines is not "infinity", 1e-13 s is not a poll interval).
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import shlex
from typing import Callable, List, Optional, Tuple, cast

from mqguard.base.durations import format_duration

MAX_VALUE = 4096  # characters of any one value

_QMGR_NAME = re.compile(r"^[A-Za-z0-9._/%]{1,48}$")
# Each number: at most 9 digits before the point and 6 after (no float overflow, no absurd precision).
_NUMBER = r"\d{1,9}(?:\.\d{1,6})?"
_PART = re.compile(rf"({_NUMBER})\s*(d|h|ms|m|s)\s*")
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

Parser = Callable[[str], object]


def bounded(raw: str) -> str:
    """The raw value if it is of sane length and has no control characters."""
    if len(raw) > MAX_VALUE:
        raise ValueError(f"a value of at most {MAX_VALUE} characters (got {len(raw)})")
    if any(ord(c) < 32 and c not in "\t" for c in raw) or "\x7f" in raw:
        raise ValueError("a value without control characters (NUL, escape, ...)")
    return raw


def parse_duration(raw: str) -> float:
    """One grammar everywhere (configuration and command line): a number of seconds, or parts with units from
    the largest down, each once - 500ms, 90s, 5m, 1h30m, 7d, 1d12h, 1.5h; only the last part has a fraction."""
    text = bounded(raw).strip()
    if re.fullmatch(_NUMBER, text):
        return float(text)
    total, pos, last = 0.0, 0, -1
    while pos < len(text):
        m = _PART.match(text, pos)
        rank = _UNIT_ORDER.index(m.group(2)) if m else -1
        if m is None or rank <= last:
            raise ValueError("a duration such as 500ms, 30s, 5m, 1h30m or 7d, or a number of seconds")
        if "." in m.group(1) and m.end() < len(text):
            raise ValueError("a duration with a fraction only in its last part (1h30m, 1.5h, 1m30.5s)")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        last, pos = rank, m.end()
    if last < 0:
        raise ValueError("a duration such as 500ms, 30s, 5m, 1h30m or 7d, or a number of seconds")
    return total


def duration(lo: float, hi: float) -> Parser:
    """A duration from ``lo`` to ``hi`` seconds."""
    def parse(raw: str) -> float:
        value = parse_duration(raw)
        if not lo <= value <= hi:
            raise ValueError(f"a duration from {format_duration(lo)} to {format_duration(hi)}")
        return value

    return parse


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
    if not _QMGR_NAME.fullmatch(name):
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
    if value and not re.fullmatch(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$", value):
        raise ValueError("a user name, or empty for mqguard's own user")
    return value


def _group(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$", value):
        raise ValueError("a group name")
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
    if not items or any(not re.fullmatch(r"^[a-z0-9._-]+$", t) for t in items):
        raise ValueError("a comma-separated list of file-system types, e.g. nfs4")
    return items


def _url(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("an http:// or https:// URL")
    return value.rstrip("/")


def _optional_url(raw: str) -> str:
    return _url(raw) if raw.strip() else ""


def _region(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"^[a-z]{2}(-[a-z]+)+-\d+$", value):
        raise ValueError("an AWS region name such as eu-west-1, or empty for instance metadata")
    return value


def _hook_name(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"^[A-Za-z0-9\-_/]{1,255}$", value):
        raise ValueError("an Auto Scaling lifecycle hook name (1-255 of A-Z a-z 0-9 - _ /)")
    return value


def _unit(raw: str) -> str:
    value = raw.strip()
    if value.lower() in ("auto", "none"):
        return value.lower()
    if not re.fullmatch(r"^[A-Za-z0-9_.:-]{1,200}@\.service$", value):
        raise ValueError("auto, none, or a systemd template unit name such as mq@.service")
    return value


def _cfn_name(what: str, pattern: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value and not re.fullmatch(pattern, value):
            raise ValueError(what)
        return value

    return parse


_cfn_stack = _cfn_name("a CloudFormation stack name (a letter, then up to 127 of A-Z a-z 0-9 -) or empty",
                       r"^[A-Za-z][-A-Za-z0-9]{0,127}$")
_cfn_resource = _cfn_name("a template's logical resource id (1-255 of A-Z a-z 0-9)", r"^[A-Za-z0-9]{1,255}$")


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
        m = re.fullmatch(r"^\[([^\]]+)\]:(\d+)$", value)
    else:
        m = re.fullmatch(r"^([^:\s]+):(\d+)$", value)
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
        if not re.fullmatch(r"^[A-Za-z0-9._/%*?\[\]!-]{1,48}$", p):
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


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return format_duration(value)
    return str(value)
