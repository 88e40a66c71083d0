"""Native HA mode's pure pieces (contract section 28): the configuration, qm.ini's stanzas kept equal to it, the
decision to end or wait for quorum, and the role the machine says."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

from mqguard import config
from mqguard.config import ConfigError, NativeHaConfig, NativeHaInstance
from mqguard.mq import nhaini
from mqguard.mq.nativeha import NhaInstance, NhaStatus
from mqguard.mq.nhaend import quorum_reason, steps
from mqguard.mq.nhaini import NhaIniError

THREE = "az-a=10.0.1.10(9414), az-b=10.0.2.10(9414), az-c=10.0.3.10(9414)"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(tmp_path: Path, qm: str = "", nha: str = "", storage: str = "fstypes = xfs\n") -> config.Config:
    return config.load(str(write(tmp_path / "m.conf", f"[queue_manager]\nname = QM1\nrun_as =\n{qm}\n"
                                 f"[control]\ngroup = root\n[storage]\n{storage}\n[native_ha]\n{nha}\n")))


def test_native_ha_configuration_reads_the_three_instances(tmp_path: Path) -> None:
    cfg = load(tmp_path, "ha = native_ha\ninstance_name = az-b", f"instances = {THREE}\nheartbeat_interval = 2s\n"
               "heartbeat_timeout = 6s\nkey_repository = /var/mqm/qmgrs/QM1/ssl/nha\ncipher_spec = ANY_TLS12")
    assert cfg.queue_manager.native_ha and not cfg.queue_manager.multi_instance
    assert cfg.native_ha.instances[1] == NativeHaInstance("az-b", "10.0.2.10", 9414)
    assert cfg.native_ha.heartbeat_interval == 2.0 and cfg.native_ha.cipher_spec == "ANY_TLS12"


def test_multi_instance_true_keeps_its_meaning(tmp_path: Path) -> None:
    cfg = load(tmp_path, "multi_instance = true", storage="")
    assert cfg.queue_manager.ha == "multi_instance" and cfg.queue_manager.multi_instance
    cfg = load(tmp_path, "ha = multi_instance", storage="")
    assert cfg.queue_manager.multi_instance
    assert load(tmp_path, "", storage="").queue_manager.ha == "single"


@pytest.mark.parametrize("qm,nha,storage,expected", [
    ("ha = native_ha\ninstance_name = az-b", "", "fstypes = xfs", "[native_ha] instances"),
    ("ha = native_ha", f"instances = {THREE}", "fstypes = xfs", "[queue_manager] instance_name"),
    ("ha = native_ha\ninstance_name = az-d", f"instances = {THREE}", "fstypes = xfs", "one of the [native_ha]"),
    ("ha = native_ha\ninstance_name = az-a", f"instances = {THREE}", "fstypes = nfs4", "own block storage"),
    ("ha = native_ha\ninstance_name = az-a\nmulti_instance = true", f"instances = {THREE}", "fstypes = xfs",
     "expected false"),
    ("ha = native_ha\ninstance_name = az-a", "instances = az-a=h1(1), az-b=h2(1)", "fstypes = xfs",
     "exactly three instances"),
    ("ha = native_ha\ninstance_name = az-a", "instances = az-a=h1(1), az-a=h2(1), az-c=h3(1)", "fstypes = xfs",
     "three different instance names"),
    ("ha = native_ha\ninstance_name = az-a", "instances = az-a=h1:1, az-b=h2(1), az-c=h3(1)", "fstypes = xfs",
     "name=host(port)"),
    ("ha = native_ha\ninstance_name = az-a", f"instances = {THREE}\nheartbeat_interval = 10s\n"
     "heartbeat_timeout = 5s", "fstypes = xfs", "at least heartbeat_interval"),
    ("ha = native_ha\ninstance_name = az-a", f"instances = {THREE}\ncipher_spec = ANY_TLS12", "fstypes = xfs",
     "expected key_repository too"),
    ("ha = native_ha\ninstance_name = az-a\ncrtmqm_options = -lc", f"instances = {THREE}", "fstypes = xfs",
     "no log type option"),
    ("", f"instances = {THREE}", "", "only with [queue_manager] ha = native_ha"),
    ("ha = shared", "", "", "one of single, multi_instance, native_ha"),
])
def test_native_ha_configuration_errors_say_which_key(tmp_path: Path, qm: str, nha: str, storage: str,
                                                       expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, qm, nha, storage + "\n")
    assert expected in str(info.value), str(info.value)


NHA = NativeHaConfig(instances=(NativeHaInstance("az-a", "10.0.1.10", 9414), NativeHaInstance("az-b", "10.0.2.10", 9414),
                                NativeHaInstance("az-c", "10.0.3.10", 9414)),
                     heartbeat_interval=5.0, heartbeat_timeout=10.0)
CREATED = ("#* qm.ini *#\nLog:\n   LogType=REPLICATED\n   LogPath=/var/mqm/log/QM1/\nNativeHALocalInstance:\n"
           "   Name=az-b\n   LocalAddress=(9414)\nTuningParameters:\n   FileLockHeartBeatLen=15\n")


def test_the_stanzas_are_written_once_and_kept_equal_to_the_configuration(tmp_path: Path) -> None:
    ini = write(tmp_path / "qm.ini", CREATED)
    os.chmod(ini, 0o640)
    changed = nhaini.sync(str(tmp_path), NHA, "az-b")
    text = ini.read_text()
    assert changed and text.count("NativeHAInstance:") == 3
    assert "NativeHAInstance:\n   Name=az-c\n   ReplicationAddress=10.0.3.10(9414)\n" in text
    assert "   LocalAddress=(9414)\n" in text and "   HeartbeatInterval=5000\n   HeartbeatTimeout=10000\n" in text
    assert "TuningParameters:\n   FileLockHeartBeatLen=15\n" in text and "LogType=REPLICATED" in text
    assert oct(os.stat(ini).st_mode & 0o777) == oct(0o640), "the mode is kept"
    assert nhaini.sync(str(tmp_path), NHA, "az-b") is None, "already equal: nothing written"
    moved = NativeHaConfig(instances=(NHA.instances[0], NHA.instances[1], NativeHaInstance("az-c", "10.0.9.9", 9414)),
                           key_repository="/var/mqm/ssl/nha", certificate_label="nha", cipher_spec="ANY_TLS12")
    assert nhaini.sync(str(tmp_path), moved, "az-b")
    text = ini.read_text()
    assert "10.0.3.10" not in text and "ReplicationAddress=10.0.9.9(9414)" in text and text.count("Name=az-c") == 1
    assert "   KeyRepository=/var/mqm/ssl/nha\n   CertificateLabel=nha\n   CipherSpec=ANY_TLS12\n" in text
    assert not list(tmp_path.glob(".qm.ini.*")), "no temporary file left"


def test_a_qm_ini_that_is_not_this_instance_is_refused_with_what_to_do(tmp_path: Path) -> None:
    write(tmp_path / "qm.ini", CREATED)
    with pytest.raises(NhaIniError, match="set instance_name = az-b"):
        nhaini.sync(str(tmp_path), NHA, "az-a")
    write(tmp_path / "qm.ini", "Log:\n   LogType=CIRCULAR\n")
    with pytest.raises(NhaIniError, match="not created as a Native HA instance"):
        nhaini.sync(str(tmp_path), NHA, "az-b")


def test_qm_ini_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = write(tmp_path / "elsewhere.ini", CREATED)
    os.symlink(target, tmp_path / "qm.ini")
    with pytest.raises(OSError):
        nhaini.sync(str(tmp_path), NHA, "az-b")
    assert target.read_text() == CREATED


def status(role: str, me: str, peers: List[NhaInstance], quorum: int = 3) -> NhaStatus:
    mine = NhaInstance(me, role, "h", True, True, 0, True)
    return NhaStatus("QM1", role, me, True, (quorum, 3), tuple([mine] + peers))


def peer(name: str, role: str = "replica", linked: bool = True, insync: bool = True) -> NhaInstance:
    return NhaInstance(name, role, "h", linked, insync, 0, linked)


def test_an_end_that_would_break_quorum_waits_and_says_why() -> None:
    assert quorum_reason(status("replica", "az-b", [peer("az-a", "active"), peer("az-c")])) == ""
    why = quorum_reason(status("replica", "az-b", [peer("az-a", "active"), peer("az-c", "unknown", linked=False)]))
    assert "would break the Native HA group's quorum: 2 of 3 instances run (az-c down)" in why
    why = quorum_reason(status("active", "az-a", [peer("az-b", insync=False), peer("az-c", insync=False)]))
    assert "no replica in sync to hand over to" in why
    alone = status("unknown", "az-a", [peer("az-b", "unknown", linked=False), peer("az-c", "unknown", linked=False)])
    assert quorum_reason(alone) == "", "alone: there is no quorum to break; ending is allowed"
    assert quorum_reason(None) == "", "unknown: endmqm's own check still stands"


def test_the_active_hands_over_and_a_replica_ends_alone_each_escalating() -> None:
    assert [m for m, _ in steps("active", 60)] == [["-s", "-w"], ["-s", "-i"], ["-s", "-p"]]
    assert [m for m, _ in steps("replica", 60)] == [["-x", "-w"], ["-x", "-i"], ["-x", "-p"]]
    assert steps("unknown", 60)[0] == (["-x", "-w"], 60)


def test_quorum_is_judged_from_the_active_or_from_what_a_replica_can_see() -> None:
    assert status("active", "az-a", [peer("az-b"), peer("az-c")], quorum=2).quorum_held
    assert not status("active", "az-a", [peer("az-b"), peer("az-c")], quorum=1).quorum_held
    # a replica's own QUORUM may be out of date (IBM): connected to an active, the group has quorum
    assert status("replica", "az-b", [peer("az-a", "active"), peer("az-c")], quorum=1).quorum_held
    assert status("unknown", "az-b", [peer("az-a", "unknown"), peer("az-c", "unknown", linked=False)],
                  quorum=0).quorum_held, "two run: an election can take place"
    assert not status("unknown", "az-b", [peer("az-a", "unknown", linked=False),
                                          peer("az-c", "unknown", linked=False)], quorum=0).quorum_held
