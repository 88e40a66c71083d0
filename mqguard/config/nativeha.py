"""The Native HA part of the configuration (contract section 28): parsers for ``[queue_manager] ha`` and
``instance_name`` and for ``[native_ha]``, and the rules that involve more than one key.

IBM's facts (../shared/reference/mq-native-ha.md): exactly three instances (nha: 0), each ``NativeHAInstance``
``ReplicationAddress`` is ``host(port)`` with the port in brackets (nha: 2), heartbeat settings within IBM's
ranges, the timeout at least the interval (nha: 9). A Native HA instance keeps its data on this host's own block
storage (nha: 0): an NFS type there is refused.
"""

from __future__ import annotations

import re
from typing import List, Tuple

from mqguard.config.types import Config, ConfigProblem, HaMode, NativeHaInstance

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9._%-]{1,48}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]{2,45}\]?")
_ENTRY = re.compile(r"\s*([^=\s]+)\s*=\s*([^()\s]+)\((\d{1,5})\)\s*")
_LABEL = re.compile(r"[A-Za-z0-9 ._-]{0,64}")
_CIPHER = re.compile(r"[A-Z0-9_]{0,64}")
HEARTBEAT_MS = (500, 60000)  # HeartbeatInterval (nha: 9)
TIMEOUT_MS = (500, 120000)  # HeartbeatTimeout


def parse_ha(raw: str) -> str:
    value = raw.strip().lower()
    if value and value not in [m.value for m in HaMode]:
        raise ValueError("one of " + ", ".join(m.value for m in HaMode) + " (empty: from multi_instance)")
    return value


def parse_instance_name(raw: str) -> str:
    value = raw.strip()
    if value and not _INSTANCE_NAME.fullmatch(value):
        raise ValueError("an instance name: 1-48 characters of A-Z a-z 0-9 . _ % -")
    return value


def parse_instances(raw: str) -> Tuple[NativeHaInstance, ...]:
    """``name=host(port), name=host(port), name=host(port)``: exactly three, names and addresses distinct."""
    text = raw.strip()
    if not text:
        return ()
    out: List[NativeHaInstance] = []
    for part in text.split(","):
        m = _ENTRY.fullmatch(part)
        if m is None:
            raise ValueError(f"name=host(port) entries separated by commas (not {part.strip()!r})")
        name, host, port = m.group(1), m.group(2), int(m.group(3))
        if not _INSTANCE_NAME.fullmatch(name):
            raise ValueError(f"an instance name of 1-48 characters of A-Z a-z 0-9 . _ % - (not {name!r})")
        if not _HOST.fullmatch(host):
            raise ValueError(f"a host name or IP address (not {host!r})")
        if not 1 <= port <= 65535:
            raise ValueError(f"a port from 1 to 65535 (not {port})")
        out.append(NativeHaInstance(name, host, port))
    if len(out) != 3:
        raise ValueError(f"exactly three instances (Native HA runs three; {len(out)} given)")
    if len({i.name for i in out}) != 3:
        raise ValueError("three different instance names")
    if len({(i.host, i.port) for i in out}) != 3:
        raise ValueError("three different replication addresses")
    return tuple(out)


def show_instances(value: object) -> str:
    return ", ".join(f"{i.name}={i.address}" for i in value) if isinstance(value, tuple) else str(value)


def parse_label(raw: str) -> str:
    value = raw.strip()
    if not _LABEL.fullmatch(value):
        raise ValueError("a certificate label of at most 64 characters of A-Z a-z 0-9 space . _ -")
    return value


def parse_cipher(raw: str) -> str:
    value = raw.strip()
    if not _CIPHER.fullmatch(value):
        raise ValueError("an IBM MQ CipherSpec name such as ANY_TLS12_OR_HIGHER")
    return value


def problems(cfg: Config, file: str, multi_instance_set: bool) -> List[ConfigProblem]:
    """The rules of section 28 that involve more than one key."""
    qm, nha = cfg.queue_manager, cfg.native_ha
    found: List[ConfigProblem] = []
    if qm.ha in (HaMode.SINGLE.value, HaMode.NATIVE_HA.value) and multi_instance_set and qm.multi_instance:
        found.append(ConfigProblem(file, "queue_manager", "multi_instance", "true",
                                   f"expected false (or unset) with ha = {qm.ha}"))
    if not qm.native_ha:
        if nha.instances:
            found.append(ConfigProblem(file, "native_ha", "instances", show_instances(nha.instances),
                                       "expected only with [queue_manager] ha = native_ha"))
        return found
    return found + _instances(cfg, file) + _storage_and_options(cfg, file) + _tuning(cfg, file)


def _instances(cfg: Config, file: str) -> List[ConfigProblem]:
    qm, names = cfg.queue_manager, [i.name for i in cfg.native_ha.instances]
    found: List[ConfigProblem] = []
    if not names:
        found.append(ConfigProblem(file, "native_ha", "instances", "", "expected the three instances, "
                                   "name=host(port) each (this key is required with ha = native_ha)"))
    if not qm.instance_name:
        found.append(ConfigProblem(file, "queue_manager", "instance_name", "", "expected this host's instance name "
                                   "(crtmqm -lr; required with ha = native_ha)"))
    elif names and qm.instance_name not in names:
        found.append(ConfigProblem(file, "queue_manager", "instance_name", qm.instance_name,
                                   f"expected one of the [native_ha] instances ({', '.join(names)})"))
    return found


def _storage_and_options(cfg: Config, file: str) -> List[ConfigProblem]:
    qm = cfg.queue_manager
    found: List[ConfigProblem] = []
    if any(t.startswith("nfs") for t in cfg.storage.fstypes):
        found.append(ConfigProblem(file, "storage", "fstypes", ",".join(cfg.storage.fstypes),
                                   "expected this host's own block storage (e.g. xfs, ext4) with ha = native_ha: "
                                   "each instance keeps its own copy of the data; IBM recommends block storage"))
    if any(o == "-lr" or o in ("-lc", "-ll", "-lla", "-lln") for o in qm.crtmqm_options):
        found.append(ConfigProblem(file, "queue_manager", "crtmqm_options", " ".join(qm.crtmqm_options),
                                   "expected no log type option with native_ha (mqguard passes -lr instance_name)"))
    return found


def _tuning(cfg: Config, file: str) -> List[ConfigProblem]:
    nha = cfg.native_ha
    found: List[ConfigProblem] = []
    interval, timeout = round(nha.heartbeat_interval * 1000), round(nha.heartbeat_timeout * 1000)
    if not HEARTBEAT_MS[0] <= interval <= HEARTBEAT_MS[1]:
        found.append(ConfigProblem(file, "native_ha", "heartbeat_interval", f"{nha.heartbeat_interval:g}s",
                                   "expected 500ms to 60s (IBM's range for HeartbeatInterval)"))
    if not (TIMEOUT_MS[0] <= timeout <= TIMEOUT_MS[1] and timeout >= interval):
        found.append(ConfigProblem(file, "native_ha", "heartbeat_timeout", f"{nha.heartbeat_timeout:g}s",
                                   "expected 500ms to 120s and at least heartbeat_interval (IBM's range)"))
    if nha.cipher_spec and not nha.key_repository:
        found.append(ConfigProblem(file, "native_ha", "cipher_spec", nha.cipher_spec,
                                   "expected key_repository too (IBM: a CipherSpec requires a KeyRepository)"))
    return found
