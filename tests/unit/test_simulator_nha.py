"""The simulator's Native HA against ../shared/reference/mq-native-ha.md: three simulated hosts, each with its own
storage, replicating over real loopback TCP; heartbeats at IBM's minimum (500 ms, timeout 1 s) to keep it quick.

If these fail, mqguard's Native HA tests prove less."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.conftest import wait_until
from tests.sim import mqsim
from tests.support import free_port

NAMES = ("az-a", "az-b", "az-c")


class Group:
    """Three hosts of one Native HA queue manager QM1, one instance each."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.repl = {n: free_port() for n in NAMES}
        self.listen = {n: free_port() for n in NAMES}
        self.bindir = {n: str(tmp / f"bin-{n}") for n in NAMES}
        self.prefix = {n: str(tmp / f"var-{n}") for n in NAMES}
        self.ctl = {n: mqsim.install(self.bindir[n], self.prefix[n], host=f"host-{n}") for n in NAMES}

    def run(self, n: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([f"{self.bindir[n]}/{argv[0]}", *argv[1:]], capture_output=True, text=True, timeout=60)

    def create(self, n: str, stanzas: Optional[str] = None, tuning: str = "") -> None:
        assert self.run(n, "crtmqdir", "-s", "-f").returncode in (0, 10)
        res = self.run(n, "crtmqm", "-lr", n, "-p", str(self.listen[n]), "QM1")
        assert res.returncode == 0, res.stdout + res.stderr
        ini = Path(self.prefix[n]) / "qmgrs" / "QM1" / "qm.ini"
        text = ini.read_text()
        local = f"NativeHALocalInstance:\n   Name={n}\n"
        assert local in text, text
        tuning = tuning or "   HeartbeatInterval=500\n   HeartbeatTimeout=1000\n"
        text = text.replace(local, local + tuning)
        text += stanzas if stanzas is not None else self.instances()
        ini.write_text(text)

    def instances(self, ports: Optional[Dict[str, int]] = None) -> str:
        ports = ports or self.repl
        return "".join(f"NativeHAInstance:\n   Name={m}\n   ReplicationAddress=127.0.0.1({ports[m]})\n"
                       for m in NAMES)

    def dspmq(self, n: str, *extra: str) -> str:
        return self.run(n, "dspmq", "-m", "QM1", *extra).stdout

    def status(self, n: str) -> str:
        out = self.dspmq(n, "-n")
        return out.split("STATUS(", 1)[1].split(")", 1)[0] if "STATUS(" in out else out

    def active(self) -> List[str]:
        return [n for n in NAMES if self.status(n) == "RUNNING"]

    def controller(self, n: str) -> int:
        pids = mqsim.controller_pids("QM1", self.bindir[n])
        assert len(pids) == 1, pids
        return pids[0]

    def kill(self, n: str) -> None:
        for pid in mqsim.installation_processes(self.bindir[n], "QM1", ("amqzxma0",) + mqsim.CHILDREN):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        for n in NAMES:
            self.kill(n)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    g = Group(tmp_path)
    try:
        yield g
    finally:
        g.cleanup()


def started(g: Group) -> str:
    """All three created and started; returns the elected active instance."""
    for n in NAMES:
        g.create(n)
    codes = [g.run(n, "strmqm", "QM1").returncode for n in NAMES]
    # nha: 3 — the first election needs all three: the first two cannot be active when their strmqm returns
    assert codes[:2] == [94, 94], codes
    wait_until(lambda: len(g.active()) == 1, 20, "one active instance elected")
    active = g.active()[0]
    wait_until(lambda: all(g.status(n) == "REPLICA" for n in NAMES if n != active), 20, "two replicas")
    return active


def test_three_instances_elect_one_active_and_dspmq_shows_roles(group: Group) -> None:
    g = group
    active = started(g)
    assert "STATUS(Running)" in g.dspmq(active)
    wait_until(lambda: "QUORUM(3/3)" in g.dspmq(active, "-o", "nativeha"), 10, "three in sync")
    header = g.dspmq(active, "-o", "nativeha").splitlines()[0]
    assert header.startswith("QMNAME(QM1)") and f"ROLE(Active) INSTANCE({active}) INSYNC(yes) QUORUM(3/3)" in header
    lines = g.dspmq(active, "-o", "nativeha", "-x").splitlines()
    assert len(lines) == 4 and all(line.startswith(" INSTANCE(") for line in lines[1:])
    assert lines[1].startswith(f" INSTANCE({active}) ROLE(Active) REPLADDR(127.0.0.1) ")
    assert all("CONNACTV(yes)" in line and "INSYNC(yes)" in line and "BACKLOG(0)" in line and "ACKLSN(<" in line
               for line in lines[2:]), lines
    # what mqguard reads of it (mqguard/mq/nativeha.py)
    from mqguard.mq.nativeha import parse_nativeha
    seen = parse_nativeha("\n".join(lines), "QM1")
    assert seen.role == "active" and seen.quorum == (3, 3) and [i.insync for i in seen.instances] == [True] * 3
    replica = next(n for n in NAMES if n != active)
    assert "STATUS(Replica)" in g.dspmq(replica)
    assert "ROLE(Replica)" in g.dspmq(replica, "-o", "nativeha").splitlines()[0]
    # the active serves its -p listener; a replica does not (nha: 1, 8)
    import socket
    socket.create_connection(("127.0.0.1", g.listen[active]), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", g.listen[replica]), timeout=1).close()


def test_the_active_killed_a_replica_takes_over_and_the_dead_one_returns_as_a_replica(group: Group) -> None:
    g = group
    active = started(g)
    g.kill(active)
    wait_until(lambda: len(g.active()) == 1 and g.active()[0] != active, 15, "a new active after HeartbeatTimeout")
    assert g.status(active) == "ENDED UNEXPECTEDLY"
    res = g.run(active, "strmqm", "QM1")
    assert res.returncode == 94, res.stdout + res.stderr  # back as a replica
    wait_until(lambda: "ROLE(Replica)" in g.dspmq(active, "-o", "nativeha") and
               "INSYNC(yes)" in g.dspmq(active, "-o", "nativeha"), 15, "the old active in sync as a replica")


def test_a_restarted_replica_is_behind_until_it_catches_up(group: Group) -> None:
    g = group
    active = started(g)
    replica = next(n for n in NAMES if n != active)
    assert g.run(replica, "endmqm", "-x", "QM1").returncode == 0
    import time
    time.sleep(3)  # the active writes on meanwhile (with the third instance acknowledging)
    Path(g.ctl[replica], "nha.catchup").write_text("8")  # KB/s: slow enough to watch
    assert g.run(replica, "strmqm", "QM1").returncode == 94
    wait_until(lambda: "INSYNC(no)" in g.dspmq(replica, "-o", "nativeha"), 10, "behind after its restart")
    line = next(x for x in g.dspmq(active, "-o", "nativeha", "-x").splitlines() if f"INSTANCE({replica})" in x)
    assert "INSYNC(no)" in line and "BACKLOG(0)" not in line, line
    os.unlink(Path(g.ctl[replica], "nha.catchup"))
    wait_until(lambda: "INSYNC(yes)" in g.dspmq(replica, "-o", "nativeha"), 10, "caught up")


def test_endmqm_s_hands_over_and_ends_that_break_quorum_are_refused(group: Group) -> None:
    g = group
    active = started(g)
    r1, r2 = [n for n in NAMES if n != active]
    assert g.run(r1, "endmqm", "-s", "QM1").returncode == 40, "-s is for the active instance"
    res = g.run(active, "endmqm", "-s", "QM1")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_until(lambda: len(g.active()) == 1 and g.active()[0] != active, 10, "handed over")
    assert g.status(active) == "ENDED NORMALLY"
    new = g.active()[0]
    last = r1 if new == r2 else r2
    # two instances run: ending either would leave one, and the group's quorum breaks (nha: 6)
    refused = g.run(last, "endmqm", "-x", "QM1")
    assert refused.returncode == 62 and "quorum" in refused.stderr, refused.stderr
    assert g.status(last) == "REPLICA", "a refused end leaves the instance running"
    assert g.run(new, "endmqm", "-s", "QM1").returncode == 62


def test_two_instances_down_the_last_cannot_be_active(group: Group) -> None:
    g = group
    active = started(g)
    r1, r2 = [n for n in NAMES if n != active]
    g.kill(r1)
    g.kill(r2)
    # nha: 6, 9 — connected to no other instance, the active ends after QuorumConnectivityTimeout (0)
    wait_until(lambda: g.status(active) == "ENDED UNEXPECTEDLY", 15, "the isolated active ended")
    assert g.run(active, "strmqm", "QM1").returncode == 94
    wait_until(lambda: g.status(active) == "NEGOTIATING", 10, "alone: negotiating")
    assert "QUORUM(0/3)" in g.dspmq(active, "-o", "nativeha") and not g.active()
    assert g.run(r1, "strmqm", "QM1").returncode in (0, 94)
    wait_until(lambda: len(g.active()) == 1, 15, "two of three elect again (a majority after the first)")


def test_instance_stanzas_that_disagree_are_rejected(group: Group) -> None:
    g = group
    wrong = dict(g.repl, **{"az-a": g.repl["az-a"] + 1})  # az-c has another address for az-a
    g.create("az-a")
    g.create("az-b")
    g.create("az-c", stanzas=g.instances(wrong))
    for n in NAMES:
        assert g.run(n, "strmqm", "QM1").returncode == 94
    # az-c's stanzas differ: the others' heartbeats reach it and it rejects them (nha: 0, 2)
    wait_until(lambda: "AMQ3209E" in mqsim.error_log(f"{g.prefix['az-c']}/qmgrs/QM1/errors"), 10, "AMQ3209E")
    import time
    time.sleep(2)
    assert not g.active(), "the first election needs all three, and one is rejected"


@pytest.mark.parametrize("case", ["no instance stanzas", "two instance stanzas", "heartbeat out of range",
                                  "no port in brackets"])
def test_strmqm_refuses_an_incomplete_or_invalid_configuration(group: Group, case: str) -> None:
    g = group
    two = "".join(f"NativeHAInstance:\n   Name={m}\n   ReplicationAddress=127.0.0.1({g.repl[m]})\n"
                  for m in NAMES[:2])
    if case == "no instance stanzas":
        g.create("az-a", stanzas="")
    elif case == "two instance stanzas":
        g.create("az-a", stanzas=two)
    elif case == "heartbeat out of range":
        g.create("az-a", tuning="   HeartbeatInterval=100\n")
    else:
        g.create("az-a", stanzas=g.instances().replace(f"127.0.0.1({g.repl['az-b']})", "127.0.0.1"))
    res = g.run("az-a", "strmqm", "QM1")
    assert res.returncode == 71, (case, res.stdout, res.stderr)
    assert "AMQ3205E" in res.stderr or "out of range" in res.stderr, res.stderr
    assert not mqsim.controller_pids("QM1", g.bindir["az-a"])


def test_crtmqm_lr_writes_the_local_stanza_and_takes_one_log_type_only(group: Group) -> None:
    g = group
    assert g.run("az-a", "crtmqdir", "-s", "-f").returncode in (0, 10)
    both = g.run("az-a", "crtmqm", "-lr", "az-a", "-ll", "QM1")
    assert both.returncode != 0 and "Specify one only of lc, ll, lla, lln, or lr" in both.stderr
    assert g.run("az-a", "crtmqm", "-lr", "az-a", "QM1").returncode == 0
    ini = (Path(g.prefix["az-a"]) / "qmgrs" / "QM1" / "qm.ini").read_text()
    assert "NativeHALocalInstance:\n   Name=az-a\n" in ini and "LogType=REPLICATED" in ini
