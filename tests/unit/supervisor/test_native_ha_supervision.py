"""Native HA supervision, pure (contract section 28): every running role is healthy and says which it is; a lost
quorum is said, never reported; an instance that ends is restarted at once; /active and /standby; the metrics;
elections in the history; `mqguard list`."""

from __future__ import annotations

from dataclasses import replace
from typing import List, Tuple

from prometheus_client import generate_latest

from mqguard.base.telemetry import Telemetry
from mqguard.cli.nhalist import problems, table
from mqguard.history.episodes import episodes
from mqguard.history.events import Event
from mqguard.mq.nativeha import NhaInstance, NhaStatus
from mqguard.mq.status import QmStatus
from mqguard.serve.metrics import MqguardCollector, build_registry
from mqguard.supervisor.evidence import ElectionWatch
from mqguard.supervisor.model import ActionKind, State
from mqguard.supervisor.snapshot import Snapshot, nha_view
from tests.unit.supervisor.machine_driver import Driver, R, kinds

REPLICA, NEGOTIATING = QmStatus.REPLICA, QmStatus.NEGOTIATING


def inst(name: str, role: str, linked: bool = True, insync: bool = True, backlog: int = 0) -> NhaInstance:
    return NhaInstance(name, role, "h", linked, insync, backlog, linked)


def nha(role: str, me: str = "az-b", insync: bool = True, quorum: int = 3,
        others: Tuple[NhaInstance, ...] = ()) -> NhaStatus:
    peers = others or (inst("az-a", "active"), inst("az-c", "replica"))
    return NhaStatus("QM1", role, me, insync, (quorum, 3), (inst(me, role, insync=insync),) + peers)


def driver() -> Driver:
    return Driver(native_ha=True, grace_period=5.0, restart_attempts=3)


def test_every_running_role_is_healthy_and_the_state_says_which() -> None:
    d = driver()
    d.step()
    v = d.step(after=1, qmgr=REPLICA, nha=nha("replica"))
    assert v.state is State.REPLICA and v.healthy
    v = d.step(after=1, qmgr=REPLICA, nha=nha("replica", insync=False))
    assert v.state is State.REPLICA_BEHIND and v.healthy, "behind is catching up, not a fault"
    v = d.step(after=1, qmgr=NEGOTIATING, nha=nha("unknown", insync=False))
    assert v.state is State.REPLICA_BEHIND and v.healthy
    v = d.step(after=1, qmgr=R, nha=nha("active", me="az-a", others=(inst("az-b", "replica"), inst("az-c", "replica"))))
    assert v.state is State.RUNNING and v.healthy
    assert ActionKind.APPLY_MQSC in kinds(v), "elected active after being a replica: MQSC as after a takeover"


def test_a_lost_quorum_is_said_and_never_reported() -> None:
    d = driver()
    d.step()
    alone = nha("unknown", insync=False, quorum=0,
                others=(inst("az-a", "unknown", linked=False), inst("az-c", "unknown", linked=False)))
    for _ in range(20):
        v = d.step(after=5, qmgr=NEGOTIATING, nha=alone)
        assert v.healthy and ActionKind.REPORT_UNHEALTHY not in kinds(v)
    assert any("quorum lost" in n for n in v.notes), v.notes
    assert any("not connected to az-a, az-c" in n for n in v.notes), v.notes
    v = d.step(after=1, qmgr=NEGOTIATING, nha=alone, rejected="AMQ3209E: Native HA connection rejected due to "
                                                              "configuration mismatch of 'NativeHAInstance'")
    assert any("MQ rejects them: AMQ3209E" in n and "must be the same" in n for n in v.notes), v.notes


def test_an_instance_that_ends_is_restarted_at_once_and_reported_only_when_it_cannot_be_kept_running() -> None:
    d = driver()
    d.step()
    d.step(after=1, qmgr=REPLICA, nha=nha("replica"))
    v = d.step(after=0.5, qmgr=QmStatus.ENDED_UNEXPECTEDLY)
    assert kinds(v) == [ActionKind.BRING_UP], "restarted in the same cycle that saw it end"
    assert d.reports() == 0
    for _ in range(10):  # it cannot be kept running: the grace period passes with it down
        d.step(after=2, qmgr=QmStatus.ENDED_UNEXPECTEDLY)
    assert d.reports() == 1


def snapshot(state: str, status: str, view: object, going_away: bool = False) -> Snapshot:
    return Snapshot(version="t", qmgr="QM1", state=state, healthy=True, qmgr_status=status, qmgr_detail="",
                    storage_path="/var/mqm", storage_ok=True, storage_detail="", listener_port=1414, listener_ok=True,
                    bad_since=None, bad_seconds=0.0, restarts=0, reported_unhealthy=False, last_cycle=None,
                    verdict="", going_away=going_away, native_ha=True, nha=view)  # type: ignore[arg-type]


def test_active_only_on_the_elected_active_with_quorum_and_standby_only_on_an_in_sync_replica() -> None:
    elected = nha_view(nha("active", me="az-a", others=(inst("az-b", "replica"), inst("az-c", "replica"))))
    assert snapshot("running", "running", elected).active
    isolated = nha_view(nha("active", me="az-a", quorum=1))
    assert not snapshot("running", "running", isolated).active, "an isolated old active cannot commit"
    assert not snapshot("running", "running", None).active, "Native HA status unknown: not /active"
    assert not snapshot("running", "running", elected, going_away=True).active
    assert snapshot("replica", "replica", nha_view(nha("replica"))).standby
    assert not snapshot("replica_behind", "replica", nha_view(nha("replica", insync=False))).standby
    assert not snapshot("replica", "replica", nha_view(nha("replica")), going_away=True).standby


def test_the_metrics_carry_role_sync_quorum_and_backlog() -> None:
    view = nha_view(nha("active", me="az-a", others=(inst("az-b", "replica", backlog=435),
                                                      inst("az-c", "replica", insync=False, backlog=12))))
    snap = snapshot("running", "running", view)
    registry = build_registry([MqguardCollector(lambda: (snap, Telemetry()), "QM1", "/var/mqm", 1414)])
    text = generate_latest(registry).decode()
    assert 'mqguard_nha_role{qmgr="QM1",role="active"} 1.0' in text
    assert 'mqguard_nha_role{qmgr="QM1",role="replica"} 0.0' in text
    assert 'mqguard_nha_insync{qmgr="QM1"} 1.0' in text
    assert 'mqguard_nha_quorum_instances{qmgr="QM1"} 3.0' in text
    assert 'mqguard_nha_backlog_bytes{qmgr="QM1"} 445440.0' in text, "the largest replica backlog, KB x 1024"
    single = replace(snap, native_ha=False, nha=None)
    registry = build_registry([MqguardCollector(lambda: (single, Telemetry()), "QM1", "/var/mqm", 1414)])
    assert "mqguard_nha_role" not in generate_latest(registry).decode(), "only in Native HA mode"


def test_an_election_seen_from_a_replica_is_a_failover_with_the_outage_from_the_last_moment_an_active_served() -> None:
    watch = ElectionWatch()
    said: List[Tuple[str, str]] = []
    earlier: List[Tuple[str, str, float]] = []

    def look(status: NhaStatus, now: float) -> None:
        a, b = watch.look(status, QmStatus.REPLICA if status.role != "active" else QmStatus.RUNNING, now)
        said.extend(a)
        earlier.extend(b)

    look(nha("replica"), 100.0)
    look(nha("replica"), 101.0)  # az-a last seen active at 101
    gone = nha("unknown", insync=True, others=(inst("az-a", "unknown", linked=False), inst("az-c", "replica")))
    look(gone, 103.0)
    look(nha("active", me="az-b", others=(inst("az-a", "unknown", linked=False), inst("az-c", "replica"))), 104.5)
    assert earlier == [("active_lost", "Native HA: active instance az-a lost (last seen active then; seen from "
                                       "az-b)", 101.0)]
    assert said[-1][0] == "takeover" and "3.5s without an active instance" in said[-1][1], said
    events = [Event(1_800_000_000.0 + t, "host-b", e, d) for e, d, t in earlier] + \
        [Event(1_800_000_000.0 + 104.5, "host-b", e, d) for e, d in said[-1:]]
    found = episodes(sorted(events, key=lambda e: e.time))
    assert [(ep.kind, ep.outage_seconds) for ep in found] == [("failover", 3.5)]


def test_another_instance_elected_closes_the_episode_as_a_failover() -> None:
    watch = ElectionWatch()
    watch.look(nha("replica"), REPLICA, 10.0)
    watch.look(nha("replica", others=(inst("az-a", "unknown", linked=False), inst("az-c", "replica"))), REPLICA,
               12.0)
    said, _ = watch.look(nha("replica", others=(inst("az-a", "unknown", linked=False), inst("az-c", "active"))),
                         REPLICA, 13.0)
    assert said == [("elected", "Native HA: instance az-c elected active (3.0s without an active instance, as seen "
                                "from here)")]


def test_list_says_the_group_and_its_problems() -> None:
    good = nha("active", me="az-a", others=(inst("az-b", "replica"), inst("az-c", "replica")))
    assert problems(good) == []
    lines = table(good)
    assert lines[0].split() == ["INSTANCE", "ROLE", "ADDRESS", "CONNECTED", "IN", "SYNC", "BACKLOG"]
    assert lines[1].startswith("az-a (this host)  active")
    behind = nha("active", me="az-a", others=(inst("az-b", "replica", insync=False), inst("az-c", "replica")))
    assert problems(behind) == ["not in sync: az-b (catching up, or down; see docs/native-ha.md)"]
    alone = nha("unknown", insync=False, quorum=0,
                others=(inst("az-a", "unknown", linked=False), inst("az-c", "unknown", linked=False)))
    assert problems(alone)[:2] == ["no active instance", "quorum lost: 1 of 3 instances run; no instance can be "
                                                         "active until a majority runs again"]
