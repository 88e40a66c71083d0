"""The failover history (contract §23, §24): the line format read with bounds, the writer
that never blocks and never follows a link, episodes and phases from every host's events,
and tuning advice that says "not enough history" rather than guessing."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import List, Tuple

import pytest

from mqguard.history.advice import Current, advise
from mqguard.history.episodes import episodes, starts
from mqguard.history.events import Event, iso, parse_line
from mqguard.history.reader import TAIL_BYTES, read_history
from mqguard.history.writer import HistoryWriter

T0 = 1_800_000_000.0
OWNERS = frozenset({0, os.geteuid()})


def ev(t: float, host: str, event: str, detail: str = "") -> Event:
    return Event(T0 + t, host, event, detail)


def timeline(*items: Tuple[float, str, str]) -> List[Event]:
    return [ev(t, h, e) for t, h, e in items]


# ------------------------------------------------------------------ the line
def test_a_line_round_trips_and_the_file_names_the_host_not_the_line() -> None:
    line = Event(T0, "hostA", "crash", "dspmq: ended unexpectedly", "i-0123456789abcdef0", "eu-west-1a").line()
    doc = json.loads(line)
    assert set(doc) == {"time", "host", "instance_id", "az", "event", "detail"} and doc["time"].endswith("Z")
    back = parse_line(line, "hostB", T0 + 10)  # read from hostB's file: it speaks for hostB only
    assert back is not None and back.host == "hostB" and back.event == "crash"
    assert abs(back.time - T0) < 0.001 and back.instance_id == "i-0123456789abcdef0"


@pytest.mark.parametrize("line", [
    "not json", "[]", "{}", '{"event": "crash"}',
    '{"time": "2026-12-04T10:00:00.000Z", "event": "made_up"}',
    '{"time": "1999-01-01T00:00:00.000Z", "event": "crash"}',  # before any history
    '{"time": "2099-01-01T00:00:00.000Z", "event": "crash"}',  # far in the future
    '{"time": 1e308, "event": "crash"}', '{"time": "NaN", "event": "crash"}',
    '{"time": "2026-12-04T10:00:00.000Z", "event": "crash", "detail": "' + "x" * 5000 + '"}',
    "[" * 1000 + "]" * 1000,  # nesting that makes the json module recurse past Python's limit
])
def test_lines_that_are_not_sane_events_are_refused(line: str) -> None:
    assert parse_line(line, "hostA", T0) is None


def test_hostile_fields_are_bounded_and_quoted() -> None:
    line = json.dumps({"time": iso(T0), "event": "bad", "detail": "\x1b[31mred\x1b[0m" + "y" * 600,
                       "instance_id": "i-$(reboot)", "az": ["x"], "host": "someone-else"})
    got = parse_line(line, "hostA", T0)
    assert got is not None and got.host == "hostA" and got.instance_id == "" and got.az == ""
    assert "\x1b" not in got.detail and len(got.detail) < 400


# ---------------------------------------------------------------- the writer
def writer(tmp_path: Path, **kw: object) -> Tuple[HistoryWriter, List[int], List[int]]:
    dropped: List[int] = []
    failed: List[int] = []
    w = HistoryWriter(str(tmp_path), OWNERS, time.time, dropped.append, lambda: failed.append(1),
                      host="hostA", **kw)  # type: ignore[arg-type]
    return w, dropped, failed


def test_events_are_appended_to_the_hosts_file_and_read_back(tmp_path: Path) -> None:
    w, dropped, failed = writer(tmp_path)
    for name in ("started", "storage_ready", "start_issued", "running"):
        w.record(name, f"detail of {name}")
    assert w.flush(10)
    path = tmp_path / ".mqguard" / "history" / "hostA.jsonl"
    assert len(path.read_text().splitlines()) == 4 and not dropped and not failed
    hist = read_history(str(tmp_path), OWNERS, time.time())
    assert [e.event for e in hist.events] == ["started", "storage_ready", "start_issued", "running"]


def test_an_unknown_event_name_is_a_programming_error(tmp_path: Path) -> None:
    w, _, _ = writer(tmp_path)
    with pytest.raises(ValueError):
        w.record("exploded")


def test_the_file_rotates_so_a_hosts_history_is_bounded(tmp_path: Path) -> None:
    w, _, _ = writer(tmp_path, max_bytes=2000)
    for i in range(200):
        w.record("bad", f"reason {i:04d}")
        if i % 20 == 0:
            w.flush(10)
    assert w.flush(10)
    d = tmp_path / ".mqguard" / "history"
    sizes = {p.name: p.stat().st_size for p in d.iterdir()}
    assert set(sizes) == {"hostA.jsonl", "hostA.jsonl.1"} and all(s <= 2000 for s in sizes.values()), sizes
    details = [e.detail for e in read_history(str(tmp_path), OWNERS, time.time()).events]
    assert details[-1] == "reason 0199"


def test_a_planted_symlink_is_never_followed_and_the_loss_is_counted(tmp_path: Path) -> None:
    d = tmp_path / ".mqguard" / "history"
    d.mkdir(parents=True, mode=0o755)
    (tmp_path / ".mqguard").chmod(0o755)
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (d / "hostA.jsonl").symlink_to(target)
    w, dropped, failed = writer(tmp_path)
    w.record("crash")
    w.flush(10)
    assert target.read_text() == "precious\n" and failed == [1] and sum(dropped) == 1


def test_a_writer_stuck_on_efs_never_blocks_record_and_drops_what_does_not_fit(tmp_path: Path) -> None:
    w, dropped, _ = writer(tmp_path, queue_max=5)
    gate = threading.Event()
    real_append = w._append
    w._append = lambda batch, done: (gate.wait(30), real_append(batch, done))  # type: ignore[method-assign]
    began = time.monotonic()
    for _ in range(50):
        w.record("bad", "while EFS hangs")
    took = time.monotonic() - began
    assert took < 5, f"record blocked for {took:.2f}s"  # blocking would be the whole hang (30 s)
    assert sum(dropped) >= 40
    gate.set()
    assert w.flush(10)


# ---------------------------------------------------------------- the reader
def test_garbage_and_links_in_another_hosts_file_cost_only_that_hosts_lines(tmp_path: Path) -> None:
    w, _, _ = writer(tmp_path)
    w.record("running")
    w.flush(10)
    d = tmp_path / ".mqguard" / "history"
    good = Event(time.time(), "x", "crash").line()
    (d / "hostB.jsonl").write_bytes(b"\x00\xff garbage\n{not json\n" + good.encode() + b'{"event": "crash"}\n')
    (d / "hostC.jsonl").symlink_to("/etc/passwd")
    os.mkfifo(d / "hostD.jsonl")
    (d / "..jsonl").write_text(good)  # not a host name
    hist = read_history(str(tmp_path), OWNERS, time.time() + 1)
    assert sorted((e.host, e.event) for e in hist.events) == [("hostA", "running"), ("hostB", "crash")]
    assert hist.skipped_lines == 3
    assert any("hostC" in p for p in hist.problems) and any("hostD" in p for p in hist.problems)


def test_a_100_mb_history_file_costs_only_its_tail(tmp_path: Path) -> None:
    d = tmp_path / ".mqguard" / "history"
    d.mkdir(parents=True)
    big = d / "hostB.jsonl"
    with open(big, "wb") as fh:
        fh.truncate(100 * 1024 * 1024)  # sparse: 100 MB of NULs, then real lines
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n" + Event(time.time(), "hostB", "running").line().encode())
    began = time.monotonic()
    hist = read_history(str(tmp_path), OWNERS, time.time() + 1)
    took = time.monotonic() - began
    print(f"FIGURE reading a 100 MB history file: {took * 1000:.0f} ms (tail {TAIL_BYTES >> 20} MiB)")
    assert [e.event for e in hist.events] == ["running"] and hist.skipped_lines <= 1


# -------------------------------------------------------------- the episodes
def test_a_local_recovery_is_one_episode_with_its_phases_and_outage() -> None:
    evs = timeline((0, "A", "start_issued"), (2, "A", "running"), (100, "A", "crash"), (100.5, "A", "bad"),
                   (100.6, "A", "restart"), (100.7, "A", "start_issued"), (103, "A", "running"), (103, "A", "good"))
    [ep] = episodes(evs)
    assert ep.kind == "recovery" and ep.host == "A"
    assert [p.event for p in ep.phases] == ["crash", "bad", "restart", "start_issued", "running"]
    assert ep.outage_seconds == pytest.approx(3.0)
    assert [round(s, 1) for s in ep.phase_seconds()] == [0.5, 0.1, 0.1, 2.3, 0.0]
    assert [round(s.seconds, 1) for s in starts(evs)] == [2.0, 2.3]


def test_a_failover_to_a_replacement_runs_from_the_first_bad_to_the_new_host_running() -> None:
    evs = timeline((0, "A", "running"), (10, "A", "bad"), (11, "A", "restart"), (40, "A", "reported"),
                   (45, "A", "termination_notice"), (50, "A", "ended"), (51, "A", "stopped"), (80, "B", "started"),
                   (81, "B", "storage_ready"), (82, "B", "registered"), (82.5, "B", "start_issued"),
                   (95, "B", "running"))
    [ep] = episodes(evs)
    assert ep.kind == "failover" and ep.outage_seconds == pytest.approx(85.0)
    assert [p.event for p in ep.phases][-4:] == ["storage_ready", "registered", "start_issued", "running"]
    assert ep.to_json()["phases"][0] == {"event": "bad", "time": iso(T0 + 10), "host": "A", "detail": "",
                                         "seconds": 1.0}


def test_a_standby_takeover_and_a_switchover() -> None:
    takeover = timeline((0, "A", "running"), (0, "B", "standby"), (30, "A", "crash"), (31, "B", "takeover"),
                        (32, "A", "bad"), (35, "A", "standby"))
    first = episodes(takeover)[0]
    assert (first.kind, first.outage_seconds) == ("failover", pytest.approx(1.0))
    switch = timeline((0, "A", "running"), (0, "B", "standby"), (60, "A", "switchover"), (61, "A", "ended"),
                      (62.5, "B", "takeover"), (64, "A", "standby"))
    [ep] = episodes(switch)
    assert ep.kind == "switchover" and ep.outage_seconds == pytest.approx(1.5)


def test_a_drill_is_its_own_kind_and_a_standbys_trouble_has_no_outage() -> None:
    drill = timeline((0, "A", "running"), (5, "A", "drill"), (5.1, "A", "crash"), (5.2, "A", "bad"),
                     (5.3, "A", "restart"), (7, "A", "running"))
    [ep] = episodes(drill)
    assert ep.kind == "drill" and ep.outage_seconds == pytest.approx(1.9)
    standby = timeline((0, "A", "running"), (0, "B", "standby"), (10, "B", "bad"), (12, "B", "standby"))
    [ep] = episodes(standby)
    assert ep.kind == "recovery" and ep.outage_seconds == 0.0 and ep.ended == T0 + 12


def test_an_episode_that_is_not_over_says_so() -> None:
    [ep] = episodes(timeline((0, "A", "running"), (10, "A", "crash")))
    assert ep.ended is None and ep.outage_seconds is None and ep.to_json()["ended"] is None


# ----------------------------------------------------------------- the advice
NOW = Current(grace_period=60, start_timeout=300, stop_timeout=60, lock_wait=180, restart_attempts=3,
              poll_interval=5)


def recovery_history(start_seconds: float, recover_seconds: float, n: int = 4) -> List[Event]:
    out: List[Event] = []
    t = 0.0
    for _ in range(n):
        out += [ev(t, "A", "start_issued"), ev(t + start_seconds, "A", "running"),
                ev(t + 100, "A", "crash"), ev(t + 100, "A", "bad"), ev(t + 100.2, "A", "restart"),
                ev(t + 100.3, "A", "start_issued"), ev(t + 100 + recover_seconds, "A", "running"),
                ev(t + 100 + recover_seconds, "A", "good")]
        t += 1000
    return out


def by_setting(evs: List[Event], ended: List[str] = (), now: Current = NOW) -> dict:  # type: ignore[assignment]
    return {a.setting: a for a in advise(episodes(evs), starts(evs), list(ended), now)}


def test_advice_says_not_enough_history_rather_than_guessing() -> None:
    got = by_setting(timeline((0, "A", "start_issued"), (5, "A", "running")))
    assert all(a.recommended is None and a.verdict == "not enough history" for a in got.values())


def test_slow_starts_and_slow_recoveries_ask_for_longer_values() -> None:
    got = by_setting(recovery_history(start_seconds=240, recover_seconds=90),
                     ended=["endmqm -w in 50.0s", "endmqm -w in 45.2s"])
    assert got["start_timeout"].verdict == "raise" and got["start_timeout"].recommended == 480
    assert got["grace_period"].verdict == "raise" and got["grace_period"].recommended >= 135
    assert got["stop_timeout"].verdict == "raise" and got["stop_timeout"].recommended == 100
    assert "240.0s" in got["start_timeout"].because


def test_fast_starts_and_fast_recoveries_allow_shorter_values() -> None:
    slack = Current(grace_period=600, start_timeout=3600, stop_timeout=600, lock_wait=180, restart_attempts=6,
                    poll_interval=5)
    got = by_setting(recovery_history(start_seconds=3, recover_seconds=4),
                     ended=["endmqm -w in 2.0s", "endmqm -w in 3.0s"], now=slack)
    assert got["start_timeout"].verdict == "lower" and got["start_timeout"].recommended == 60
    assert got["grace_period"].verdict == "lower" and got["grace_period"].recommended == 10
    assert got["stop_timeout"].verdict == "lower" and got["stop_timeout"].recommended == 30
    assert got["restart_attempts"].verdict == "lower" and got["restart_attempts"].recommended == 2


def test_values_that_fit_are_kept_and_group_settings_follow_the_replacements() -> None:
    evs = recovery_history(start_seconds=20, recover_seconds=25) + [
        ev(9000, "A", "bad"), ev(9030, "A", "reported"), ev(9040, "A", "termination_notice"),
        ev(9060, "A", "stopped"), ev(9100, "B", "started"), ev(9101, "B", "storage_ready"),
        ev(9102, "B", "start_issued"), ev(9200, "B", "running")]
    now = Current(grace_period=45, start_timeout=300, stop_timeout=60, lock_wait=60, restart_attempts=3,
                  poll_interval=5, asg_grace=300, hook_timeout=60)
    got = by_setting(evs, ended=["in 10s", "in 12s"], now=now)
    assert got["start_timeout"].verdict == "keep" and got["grace_period"].verdict == "keep"
    assert got["lock_wait"].verdict == "raise" and got["lock_wait"].recommended == 150  # 98 s * 1.5, to 30 s
    assert got["lifecycle hook timeout"].verdict == "raise" and got["lifecycle hook timeout"].recommended == 150
    assert got["asg HealthCheckGracePeriod"].recommended == 0.0  # with a launch hook


def test_the_old_active_host_back_as_a_standby_does_not_end_the_outage_before_the_takeover() -> None:
    # as the e2e run showed: A's mqguard restarts A as a standby before B's poll sees B active
    evs = timeline((0, "A", "running"), (0, "B", "standby"), (30, "A", "crash"), (30.1, "A", "bad"),
                   (30.2, "A", "restart"), (30.3, "A", "start_issued"), (30.5, "A", "standby"),
                   (30.5, "A", "good"), (30.9, "B", "takeover"))
    [ep] = episodes(evs)
    assert ep.kind == "failover" and ep.outage_seconds == pytest.approx(0.9) and ep.phases[-1].host == "B"


def test_an_end_of_the_active_instance_and_a_silent_listener_are_outages_too() -> None:
    ended = timeline((0, "A", "running"), (10, "A", "ended"), (12, "A", "bad"), (12.1, "A", "restart"),
                     (14, "A", "running"))
    [ep] = episodes(ended)
    assert ep.kind == "recovery" and ep.outage_seconds == pytest.approx(4.0)
    listener = timeline((0, "A", "running"), (10, "A", "bad"), (13, "A", "good"))
    [ep] = episodes(listener)
    assert ep.kind == "recovery" and ep.outage_seconds == pytest.approx(3.0)
    # an end on a standby is no episode at all: nothing was serving from there
    assert episodes(timeline((0, "A", "running"), (0, "B", "standby"), (5, "B", "ended"))) == []


def test_nothing_is_written_under_the_mount_point_while_the_efs_is_not_mounted(tmp_path: Path) -> None:
    # found by the chaos soak: with EFS unmounted, the writer made .mqguard on the local disk under the
    # mount point, and bindfs (like mount over a non-empty directory) then refused to mount again
    mounted = [False]
    dropped: List[int] = []
    w = HistoryWriter(str(tmp_path), OWNERS, time.time, dropped.append, lambda: None, host="hostA",
                      mounted=lambda: mounted[0])
    w.record("bad", "storage: not mounted")
    assert w.flush(10)
    assert list(tmp_path.iterdir()) == [] and sum(dropped) == 1
    mounted[0] = True
    w.record("storage_ready")
    assert w.flush(10)
    assert [e.event for e in read_history(str(tmp_path), OWNERS, time.time()).events] == ["storage_ready"]


def test_reading_creates_nothing_and_a_fresh_storage_has_an_empty_history(tmp_path: Path) -> None:
    hist = read_history(str(tmp_path), OWNERS, time.time())
    assert hist.events == [] and hist.problems == [] and list(tmp_path.iterdir()) == []


def test_a_batch_that_fails_half_way_counts_only_what_was_lost(tmp_path: Path) -> None:
    """Issue 24 item 11: the writer counted a whole batch as dropped when part of it was written."""
    line = len(Event(time.time(), "hostA", "running", "x" * 10).line().encode())
    w, dropped, _ = writer(tmp_path, max_bytes=line + 10)  # the second event rotates the file
    hist = tmp_path / ".mqguard" / "history"
    w.record("started")  # creates the directory and the file
    assert w.flush(10)
    (hist / "hostA.jsonl").unlink()
    (hist / "hostA.jsonl.1").mkdir()  # a directory where the rotation renames to: the rename fails
    (hist / "hostA.jsonl.1" / "keep").write_text("x")
    with w._cv:  # one batch of three: queued together while the writer waits
        for name in ("running", "bad", "good"):
            w._queue.append((time.time(), name, "x" * 10))
        w._cv.notify()
    assert w.flush(10)
    assert (hist / "hostA.jsonl").read_text().count("\n") == 1, "the first event of the batch was written"
    assert sum(dropped) == 2 and w.written == 2, (dropped, w.written)  # 'started' and 'running' written


def test_the_history_file_is_never_appended_through_a_hard_link(tmp_path: Path) -> None:
    """Security round 3 (low): a hard link planted as this host's history file sent JSON into qm.ini."""
    w, dropped, failed = writer(tmp_path)
    w.record("started")
    assert w.flush(10)
    hist = tmp_path / ".mqguard" / "history"
    victim = tmp_path / "qm.ini"
    victim.write_text("Log:\n")
    (hist / "hostA.jsonl").unlink()
    os.link(victim, hist / "hostA.jsonl")
    w.record("running")
    assert w.flush(10)
    assert victim.read_text() == "Log:\n" and failed and sum(dropped) == 1


def test_reading_is_bounded_in_total_own_host_first_and_says_what_it_left_out(tmp_path: Path) -> None:
    """Security round 3 HIGH 3: per-file bounds alone let 200 compact files cost 5 GB; the read is now bounded in
    bytes and events across all files, this host's file first, each file a fair share of what is left."""
    from mqguard.history.reader import Budget

    w, _, _ = writer(tmp_path)
    w.record("started", "the real host")
    assert w.flush(10)
    hist_dir = tmp_path / ".mqguard" / "history"
    now = time.time()
    compact = "".join(json.dumps({"time": iso(now - 1000 + i * 0.01), "event": "crash"}, separators=(",", ":")) + "\n"
                      for i in range(20000))
    for n in range(30):
        (hist_dir / f"planted-{n:02d}.jsonl").write_text(compact)
    budget = Budget(total_bytes=256 * 1024, max_events=2000, min_share=4096)
    h = read_history(str(tmp_path), OWNERS, now, budget=budget, first="hostA")
    assert [e for e in h.events if e.host == "hostA"], "this host's own events are always read"
    assert len(h.events) <= 2000 and h.truncated
    planted_hosts = {e.host for e in h.events if e.host.startswith("planted")}
    assert len(planted_hosts) >= 25, "a fair share each: no file is read whole while others get nothing"
    newest = max(e.time for e in h.events if e.host == "planted-00")
    assert newest >= now - 1000 + 19999 * 0.01 - 0.001, "a file's newest lines are the ones kept"


def test_advice_is_linear_and_always_inside_the_configurations_bounds() -> None:
    """Security round 3 MEDIUM 4 and LOW: --advise --hook-timeout paired every notice with every stop (8,000 pairs:
    1.25 GiB), and planted history could steer advice to values the configuration refuses."""
    from mqguard.history.advice import Current, advise
    from mqguard.history.episodes import episodes

    t0 = time.time() - 86400
    evs = [Event(t0 - 1, "h1", "running", "")]  # active: its notice opens one episode that all pairs fall into
    for i in range(8000):
        evs.append(Event(t0 + i, "h1", "termination_notice", ""))
        evs.append(Event(t0 + i + 0.5, "h1", "stopped", ""))
    started = time.monotonic()
    advice = advise(episodes(evs), [], [], Current(60, 300, 60, 180, 3, 5, None, 900))
    assert time.monotonic() - started < 5
    assert next(a for a in advice if a.setting == "lifecycle hook timeout").recommended is not None
    slow = [Event(t0 + i * 10, "h1", "ended", "for termination (x), cleanly in 100000.0s") for i in range(3)]
    stop = next(a for a in advise([], [], [e.detail for e in slow], Current(60, 300, 60, 180, 3, 5))
                if a.setting == "stop_timeout")
    assert stop.recommended == 3600.0 and "beyond what the configuration accepts" in stop.because


def test_a_line_from_the_future_is_not_history() -> None:
    """Security round 3 (low): timestamps a day ahead were accepted, so planted lines could pose as the newest."""
    now = time.time()
    ahead = json.dumps({"time": iso(now + 3600), "event": "good"})
    close = json.dumps({"time": iso(now + 60), "event": "good"})
    assert parse_line(ahead, "hostA", now) is None
    assert parse_line(close, "hostA", now) is not None, "a clock a minute ahead is still a clock"


def test_advice_is_printed_in_the_configurations_own_grammar_with_a_paste_ready_snippet(tmp_path: Path) -> None:
    """Issue 27: --advise printed 5m00.0s, which the configuration refused, and nothing said where it goes."""
    import configparser

    from mqguard.cli.history import render_advice
    from mqguard.config import load
    from mqguard.history.advice import Advice

    advice = [Advice("grace_period", 60.0, 90.0, "the longest recovery took 72s"),
              Advice("start_timeout", 300.0, 330.5, "the slowest start took 220.3s"),
              Advice("restart_attempts", 3.0, 3.0, "enough"),
              Advice("lock_wait", 180.0, None, "0 failovers seen"),
              Advice("asg HealthCheckGracePeriod", 300.0, 0.0, "a launch hook makes it useless")]
    text = render_advice(advice)
    assert "1m30s" in text and "5m30.5s" in text and "00.0s" not in text
    snippet = text.split("# paste into", 1)[1].split("\n", 1)[1]
    ini = configparser.ConfigParser()
    ini.read_string(snippet)
    assert dict(ini["health"]) == {"grace_period": "1m30s"}, "only what changes, in its section"
    assert dict(ini["queue_manager"]) == {"start_timeout": "5m30.5s"}
    assert "HealthCheckGracePeriod" not in snippet, "the group's settings are not mqguard's keys"
    # ... and mqguard reads it back: the snippet is a valid conf.d file
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "mqguard.conf").write_text("[queue_manager]\nname = QM1\n[storage]\npath = /tmp\n")
    (tmp_path / "conf.d" / "50-tuning.conf").write_text(snippet)
    cfg = load(str(tmp_path / "mqguard.conf"))
    assert cfg.health.grace_period == 90.0 and cfg.queue_manager.start_timeout == 330.5
