"""The Native HA stanzas of qm.ini, kept equal to the configuration (contract section 28).

``crtmqm -lr NAME`` writes ``NativeHALocalInstance: Name=NAME``; the operator adds the three ``NativeHAInstance``
stanzas, identical on every host, before the first start (nha: 1, 2). mqguard writes them from ``[native_ha]``
before every start (MQ reads qm.ini when it starts; the instance is not running then), with the local instance's
TLS and heartbeat settings, and leaves every other line of qm.ini as it was. The file is replaced atomically,
keeping its owner and mode, and never through a link.
"""

from __future__ import annotations

import os
import tempfile
from typing import List, Optional, Tuple

from mqguard.base.untrusted import read_regular
from mqguard.config import NativeHaConfig
from mqguard.mq.qmini import MAX_QM_INI

LOCAL, INSTANCE = "NativeHALocalInstance", "NativeHAInstance"
# the NativeHALocalInstance keys mqguard owns (others, e.g. LocalAddress or GroupName, are left to the operator)
OWNED = ("KeyRepository", "CertificateLabel", "CipherSpec", "HeartbeatInterval", "HeartbeatTimeout")


class NhaIniError(ValueError):
    """qm.ini cannot be made to agree with the configuration: why, and what to do."""


Block = Tuple[str, List[str]]  # (stanza name or "" for lines before the first stanza, its lines)


def _blocks(text: str) -> List[Block]:
    blocks: List[Block] = [("", [])]
    for line in text.splitlines():
        bare = line.strip()
        if bare.endswith(":") and "=" not in bare and not line[:1].isspace():
            blocks.append((bare[:-1].strip(), [line]))
        else:
            blocks[-1][1].append(line)
    return blocks


def local_settings(nha: NativeHaConfig) -> List[Tuple[str, str]]:
    out = [("HeartbeatInterval", str(round(nha.heartbeat_interval * 1000))),
           ("HeartbeatTimeout", str(round(nha.heartbeat_timeout * 1000)))]
    if nha.key_repository:
        out.append(("KeyRepository", nha.key_repository))
        if nha.certificate_label:
            out.append(("CertificateLabel", nha.certificate_label))
        if nha.cipher_spec:
            out.append(("CipherSpec", nha.cipher_spec))
    return out


def rendered(text: str, nha: NativeHaConfig, local: str) -> str:
    """qm.ini's text with the Native HA stanzas as the configuration says (NhaIniError when it cannot be)."""
    blocks = _blocks(text)
    locals_ = [b for b in blocks if b[0] == LOCAL]
    if not locals_:
        raise NhaIniError(f"qm.ini has no {LOCAL} stanza: this queue manager was not created as a Native HA "
                          "instance (crtmqm -lr); it cannot be one by editing qm.ini")
    name = next((ln.split("=", 1)[1].strip() for ln in locals_[0][1][1:] if ln.strip().startswith("Name=")), "")
    if name != local:
        raise NhaIniError(f"qm.ini says this host's instance is {name!r} but [queue_manager] instance_name is "
                          f"{local!r}: the instance's name is fixed by crtmqm -lr; set instance_name = {name}")
    out: List[str] = []
    for stanza, lines in blocks:
        if stanza == INSTANCE:
            continue
        if stanza == LOCAL:
            kept = [ln for ln in lines[1:] if ln.strip() and ln.split("=", 1)[0].strip() not in OWNED]
            out += [lines[0]] + kept + [f"   {k}={v}" for k, v in local_settings(nha)]
            continue
        out += lines
    while out and not out[-1].strip():
        out.pop()
    for inst in nha.instances:
        out += [f"{INSTANCE}:", f"   Name={inst.name}", f"   ReplicationAddress={inst.address}"]
    return "\n".join(out) + "\n"


def sync(data_path: str, nha: NativeHaConfig, local: str) -> Optional[str]:
    """Make qm.ini agree; returns what changed (None: it already did)."""
    path = os.path.join(data_path, "qm.ini")
    data, st = read_regular(path, MAX_QM_INI, follow=False)
    text = data.decode("utf-8")
    want = rendered(text, nha, local)
    if want == text:
        return None
    fd, tmp = tempfile.mkstemp(prefix=".qm.ini.", dir=data_path)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(want)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    before = sorted(ln.strip() for ln in text.splitlines() if ln.strip())
    after = sorted(ln.strip() for ln in want.splitlines() if ln.strip())
    return f"{len(set(after) - set(before))} line(s) written, {len(set(before) - set(after))} removed"
