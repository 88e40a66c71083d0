"""The cluster view's parts: records as outside input, the list's verdict, and the publisher on a real
directory (atomic replace, never through a planted link, never spinning on a failing storage)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, List

import pytest

from mqguard.cluster import view
from mqguard.cluster.publisher import MIN_GAP, HostPublisher
from mqguard.cluster.reader import read_hosts
from mqguard.cluster.records import HostRecord, parse_record

NOW = 1_800_000_000.0
BASE = HostRecord(host="hostA", instance_id="i-0a1b2c3d4e5f60718", az="us-east-1a", qmgr="QM1", state="running",
                  role="active", qmgr_status="running", paused_until=None, last_seen=NOW - 3, version="0.1.0",
                  mq_level="9.4.0.0", storage_ok=True, storage_detail="ok", address="10.0.1.5:9157",
                  poll_interval=1.0)


def rec(**changes: object) -> HostRecord:
    return replace(BASE, **changes)  # type: ignore[arg-type]


def test_a_record_reads_back_as_written() -> None:
    assert parse_record(BASE.line().encode(), BASE.key, NOW) == BASE


@pytest.mark.parametrize("change, why", [
    ({"instance_id": "i-0f9e8d7c6b5a49382"}, "speaks for"),  # a record in another host's file
    ({"state": "healthy-honest"}, "state or role"),
    ({"role": "leader"}, "state or role"),
    ({"last_seen": NOW + 86400}, "future"),
    ({"host": "../../etc"}, "host"),
    ({"storage_detail": "\x1b[31mred"}, "storage_detail"),
    ({"address": "10.0.0.1:9157; rm -rf /"}, "address"),
    ({"poll_interval": float("nan")}, "poll_interval"),
])
def test_a_record_that_is_not_sane_is_refused_with_the_reason(change: dict, why: str) -> None:  # type: ignore[type-arg]
    doc = json.loads(BASE.line())
    doc.update(change)
    data = json.dumps(doc).encode() if "nan" not in str(change) else BASE.line().replace('"poll_interval":1.0',
                                                                                         '"poll_interval":NaN').encode()
    with pytest.raises(ValueError, match=why):
        parse_record(data, BASE.key, NOW)


@pytest.mark.parametrize("data", [b"[]", b'{"host": 1}', b"\xff\xfe", b"[" * 100_000, b""])
def test_garbage_is_a_value_error_never_a_crash(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_record(data, BASE.key, NOW)


def test_the_list_is_ok_only_with_exactly_one_active_and_nothing_stale_or_failed() -> None:
    after = view.stale_after(1.0)
    standby = rec(host="hostB", instance_id="i-0f9e8d7c6b5a49382", state="standby", role="standby",
                  qmgr_status="running_as_standby")
    assert after == 33.0
    assert view.exit_code([BASE, standby], NOW, after) == view.LIST_OK
    assert view.problems([standby], NOW, after) == ["no active instance"]
    assert "2 hosts say" in view.problems([BASE, replace(standby, role="active")], NOW, after)[0]
    old = replace(standby, last_seen=NOW - 600)
    assert view.problems([BASE, old], NOW, after) == ["i-0f9e8d7c6b5a49382 stale: not seen for 10m00s"]
    assert view.exit_code([BASE, replace(standby, state="failed")], NOW, after) == view.LIST_PROBLEM
    assert view.problems([], NOW, after) == ["no host has written a record yet"]
    # a stale "active" is not an active: a hung host must not hide that nobody serves
    assert "no active instance" in view.problems([replace(BASE, last_seen=NOW - 600), standby], NOW, after)


def test_the_table_puts_the_active_first_and_marks_stale() -> None:
    standby = rec(host="hostB", instance_id="i-0f9e8d7c6b5a49382", state="standby", role="standby",
                  qmgr_status="running_as_standby", last_seen=NOW - 100)
    lines = view.table([standby, BASE], NOW, 33.0, ["hosts/evil.json: not a JSON object"])
    assert lines[0].split()[:3] == ["HOST", "INSTANCE", "AZ"]
    assert lines[1].startswith("hostA") and lines[2].startswith("hostB") and "1m40s ago STALE" in lines[2]
    assert lines[-2].startswith("PROBLEM: i-0f9e8d7c6b5a49382 stale")
    assert lines[-1] == "refused: hosts/evil.json: not a JSON object"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def publisher(tmp_path: Path, clock: Clock, mounted: bool = True) -> HostPublisher:
    return HostPublisher(str(tmp_path), frozenset({os.geteuid(), 0}), lambda: NOW, clock, "QM1", "0.1.0",
                         ("127.0.0.1", 9157), mounted=lambda: mounted, host="hostA")


def test_the_record_is_written_replaced_atomically_and_never_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    clock = Clock()
    p = publisher(tmp_path, clock)
    p.offer("running", "running", None, True, "ok", 1.0)
    assert p.flush(5)
    hosts = tmp_path / ".mqguard" / "hosts"
    assert [r.role for r in read_hosts(str(tmp_path), frozenset({os.geteuid(), 0}), NOW).records] == ["active"]
    # a writer of the storage plants a link and a hard link at the record's name: replaced, never written through
    (hosts / "hostA.json").unlink()
    (hosts / "hostA.json").symlink_to(victim)
    clock.t += 20
    p.offer("standby", "running_as_standby", None, True, "ok", 1.0)
    assert p.flush(5)
    assert victim.read_text() == "precious\n" and not (hosts / "hostA.json").is_symlink()
    os.link(victim, hosts / "other.json")
    os.replace(hosts / "other.json", hosts / "hostA.json")
    clock.t += 20
    p.offer("running", "running", None, True, "ok", 1.0)
    assert p.flush(5)
    assert victim.read_text() == "precious\n"
    assert [n for n in os.listdir(hosts) if n.endswith(".tmp")] == [], "no temporary file left behind"


def test_a_failing_storage_is_retried_no_sooner_than_min_gap(tmp_path: Path) -> None:
    """Not mounted: every write fails at once. The thread must wait MIN_GAP between attempts, not spin."""
    attempts: List[float] = []
    clock = Clock()
    p = publisher(tmp_path, clock, mounted=False)
    real = p._write

    def counting(record: HostRecord) -> None:
        attempts.append(clock.t)
        real(record)
    p._write = counting  # type: ignore[method-assign]
    p.offer("running", "running", None, True, "ok", 1.0)
    time.sleep(0.5)  # real time passes, the injected clock does not: at most the first attempt
    assert len(attempts) == 1
    clock.t += MIN_GAP
    deadline = time.monotonic() + 5
    while len(attempts) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert len(attempts) == 2, attempts
    assert not p.flush(0.2), "a flush says the storage did not take the record"
    assert not (tmp_path / ".mqguard").exists(), "nothing is made under a bare mount point"


def test_writes_are_at_most_every_min_gap_and_at_least_every_refresh(tmp_path: Path) -> None:
    clock = Clock()
    p = publisher(tmp_path, clock)
    p.offer("running", "running", None, True, "ok", 1.0)
    assert p.flush(5) and p.writes == 1
    for _ in range(20):  # the loop offers every cycle; nothing changed: no write
        p.offer("running", "running", None, True, "ok", 1.0)
    time.sleep(0.3)
    assert p.writes == 1
    p.offer("recovering", "ended_unexpectedly", None, True, "ok", 1.0)  # a change within MIN_GAP waits
    time.sleep(0.3)
    assert p.writes == 1
    clock.t += MIN_GAP
    done = threading.Event()
    deadline = time.monotonic() + 5
    while p.writes < 2 and time.monotonic() < deadline:
        done.wait(0.02)
    assert p.writes == 2


def test_the_file_system_is_blamed_only_when_every_peer_answered_recently_that_its_storage_is_bad() -> None:
    from mqguard.cluster.peers import Answer, shared_outage

    bad = {"i-b": Answer("i-b", False, "probe timed out", 100.0), "i-c": Answer("i-c", False, "not mounted", 100.0)}
    assert shared_outage(["i-b", "i-c"], bad, now=101.0, fresh=10).startswith("storage bad on every host: i-b")
    assert shared_outage([], bad, 101.0, 10) == "", "no peer known: nothing is known of the file system"
    assert shared_outage(["i-b", "i-c"], {"i-b": bad["i-b"]}, 101.0, 10) == "", "one peer silent"
    good = {**bad, "i-c": Answer("i-c", True, "ok", 100.0)}
    assert shared_outage(["i-b", "i-c"], good, 101.0, 10) == "", "one peer's storage is good: the trouble is ours"
    unsure = {**bad, "i-c": Answer("i-c", None, "no answer", 100.0)}
    assert shared_outage(["i-b", "i-c"], unsure, 101.0, 10) == ""
    assert shared_outage(["i-b", "i-c"], bad, now=200.0, fresh=10) == "", "old answers say nothing of now"


def test_while_a_peer_has_not_answered_yet_the_verdict_waits_bounded() -> None:
    """A peer that has not answered yet (the question is under way, or timed out once on a loaded machine) is
    waited for, at most ``hold`` seconds from the moment this host's storage went bad; a definitive answer that its
    storage is good ends the wait at once; "no answer" does not erase an earlier definitive one."""
    from mqguard.cluster.peers import Answer, judge

    bad_b = Answer("i-b", False, "probe timed out", 100.0)
    silent_c = Answer("i-c", None, "no answer from 127.0.0.1:1: timed out", 101.0)
    outage, waiting = judge(["i-b", "i-c"], {"i-b": bad_b}, now=101.0, fresh=10, bad_since=99.0, hold=8)
    assert outage == "" and "i-c" in waiting, waiting
    outage, waiting = judge(["i-b", "i-c"], {"i-b": bad_b, "i-c": silent_c}, now=106.0, fresh=10, bad_since=99.0,
                            hold=8)
    assert outage == "" and "i-c" in waiting, "one silent answer is not yet a silent peer"
    assert judge(["i-b", "i-c"], {"i-b": bad_b, "i-c": silent_c}, now=107.5, fresh=10, bad_since=99.0,
                 hold=8) == ("", ""), "past the bound: nothing is known, the report goes as it always did"
    good_c = Answer("i-c", True, "ok", 101.0)
    assert judge(["i-b", "i-c"], {"i-b": bad_b, "i-c": good_c}, now=101.5, fresh=10, bad_since=99.0,
                 hold=8) == ("", ""), "a good peer: the trouble is this host's, no waiting"
    bad_c = Answer("i-c", False, "not mounted", 101.0)
    outage, waiting = judge(["i-b", "i-c"], {"i-b": bad_b, "i-c": bad_c}, now=102.0, fresh=10, bad_since=99.0,
                            hold=8)
    assert outage.startswith("storage bad on every host") and waiting == ""
    assert judge([], {}, now=102.0, fresh=10, bad_since=99.0, hold=8) == ("", ""), "no peer known: no wait"


def test_a_good_answer_given_before_the_peer_could_have_seen_the_freeze_is_not_yet_an_answer() -> None:
    """Both hosts meet a frozen EFS a moment apart: the first to ask may hear "good" from a peer whose own probe
    has not yet run out (seen under load in `make test`: the host reported an outage that was the file
    system's). A good answer counts only once the peer had time to notice (``settle``: a probe timeout and two
    polls after this host's storage went bad); before that the report keeps waiting, bounded as ever."""
    from mqguard.cluster.peers import Answer, judge

    early_good = {"i-b": Answer("i-b", True, "ok", 100.5)}
    outage, waiting = judge(["i-b"], early_good, now=101.0, fresh=10, bad_since=100.0, hold=8, settle=2.0)
    assert outage == "" and "i-b" in waiting, "too early to be believed"
    late_good = {"i-b": Answer("i-b", True, "ok", 102.5)}
    assert judge(["i-b"], late_good, now=103.0, fresh=10, bad_since=100.0, hold=8, settle=2.0) == ("", ""), \
        "the peer had time to see it: the trouble is this host's"
    assert judge(["i-b"], early_good, now=108.5, fresh=10, bad_since=100.0, hold=8, settle=2.0) == ("", ""), \
        "bounded: past hold the report goes as it always did"


def test_a_silent_answer_does_not_overwrite_a_definitive_one(tmp_path: Path) -> None:
    """The peer said "bad" a moment ago; its next answer timed out on a loaded machine: the outage holds (within
    freshness) rather than flapping into a report."""
    from mqguard.cluster.peers import PeerStorage

    answers = iter([(False, "probe timed out"), (None, "no answer: timed out")])
    clock = [100.0]
    ps = PeerStorage(str(tmp_path), frozenset(), own_key=lambda: "i-a", poll_interval=lambda: 0.5,
                     monotonic=lambda: clock[0], ask=lambda address: next(answers))
    ps._peers = {"i-b": "127.0.0.1:1"}
    for _ in range(2):
        ps.tick(storage_ok=False)
        deadline = time.monotonic() + 5
        while ps._asking and time.monotonic() < deadline:
            time.sleep(0.01)
        clock[0] += 1.0
    outage, waiting = ps.verdict()
    assert outage.startswith("storage bad on every host: i-b (probe timed out)"), (outage, waiting)


def test_a_read_of_the_records_stuck_on_the_frozen_storage_does_not_stop_the_peers_being_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The records are read while the storage is good; when EFS freezes during such a read, the read hangs until
    EFS answers again. Asking the peers touches no storage: it must not wait for that read (a busy machine in
    `make test` reported an outage that was the file system's, because the ask never started)."""
    from mqguard.cluster import peers as peers_mod

    release = threading.Event()
    monkeypatch.setattr(peers_mod, "read_hosts", lambda *a, **k: release.wait(10) and None)
    asked: List[str] = []

    def ask(address: str) -> tuple:  # type: ignore[type-arg]
        asked.append(address)
        return False, "probe timed out"

    clock = [100.0]
    ps = peers_mod.PeerStorage(str(tmp_path), frozenset(), own_key=lambda: "i-a", poll_interval=lambda: 0.5,
                               monotonic=lambda: clock[0], ask=ask)
    ps._peers = {"i-b": "127.0.0.1:1"}
    try:
        ps.tick(storage_ok=True)  # the read starts, and hangs (EFS froze under it)
        clock[0] += 1.0
        ps.tick(storage_ok=False)
        deadline = time.monotonic() + 5
        while not asked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert asked == ["127.0.0.1:1"], "the peers were not asked while the stuck read went on"
        deadline = time.monotonic() + 5
        outage = ""
        while not outage and time.monotonic() < deadline:
            outage, _ = ps.verdict()
            time.sleep(0.01)
        assert outage.startswith("storage bad on every host: i-b"), outage
    finally:
        release.set()


@contextlib.contextmanager
def canned_status(bodies: List[bytes], code: int) -> Iterator[str]:
    """A loopback HTTP server answering each GET with the next of ``bodies`` and ``code``: its address."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.pop(0)
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_good_answer_from_a_peer_whose_loop_is_stuck_is_not_believed() -> None:
    """The peer's /status is its last finished cycle: a peer whose cycle hangs in dspmq on the same frozen EFS
    (3 s of command_timeout, seen under load in `make test`) still says "storage ok" from before the freeze. A
    good answer from a cycle older than ``stale_after`` is no answer; a bad one stays bad."""

    from mqguard.base.clock import iso_utc
    from mqguard.cluster.peers import ask_status

    now = time.time()
    bodies = [json.dumps({"storage_ok": True, "storage_detail": "ok", "last_cycle": iso_utc(now - 2.5)}).encode(),
              json.dumps({"storage_ok": True, "storage_detail": "ok", "last_cycle": iso_utc(now - 0.2)}).encode(),
              json.dumps({"storage_ok": False, "storage_detail": "stuck", "last_cycle": iso_utc(now - 9)}).encode()]

    with canned_status(bodies, 200) as address:
        ok, why = ask_status(address, stale_after=2.0, wall=lambda: now)
        assert ok is None and "last finished cycle" in why, why
        assert ask_status(address, stale_after=2.0, wall=lambda: now) == (True, "ok")
        assert ask_status(address, stale_after=2.0, wall=lambda: now) == (False, "stuck")


def test_a_peers_good_counts_only_when_its_storage_was_seen_good_after_ours_went_bad() -> None:
    """The precise rule: a peer's "good" says something of now only if its storage was seen good (its probe
    finished) after this host's went bad; a good from before - however fresh its cycle - is the old news that a
    loaded peer's cycle, stuck in dspmq on the same frozen EFS, still serves."""
    from mqguard.cluster.peers import Answer, judge

    old_news = {"i-b": Answer("i-b", True, "ok", 105.0, checked=99.5)}  # probed before our trouble (at 100)
    outage, waiting = judge(["i-b"], old_news, now=105.5, fresh=20, bad_since=100.0, hold=12, settle=2.0)
    assert outage == "" and "i-b" in waiting, "old news: keep waiting"
    news = {"i-b": Answer("i-b", True, "ok", 105.0, checked=104.0)}  # probed good after our trouble began
    assert judge(["i-b"], news, now=105.5, fresh=20, bad_since=100.0, hold=12, settle=2.0) == ("", ""), \
        "its storage works now: ours is the trouble"


def test_a_peers_answer_is_outside_input(tmp_path: Path) -> None:
    """What another host's address answers is parsed with bounds: not mqguard's status is no answer."""

    from mqguard.cluster.peers import ask_status

    bodies = [b'{"storage_ok": false, "storage_detail": "probe timed out"}', b"<html>", b'{"storage_ok": "no"}',
              b"[" * 100_000]

    with canned_status(bodies, 503) as address:
        assert ask_status(address) == (False, "probe timed out"), "a 503 still carries the status"
        for _ in range(3):
            ok, why = ask_status(address)
            assert ok is None and "not with mqguard's status" in why
        ok, why = ask_status("127.0.0.1:1")
        assert ok is None and "no answer" in why
