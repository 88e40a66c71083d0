"""The listener probe: the socket table each poll, a real connect only now and then (no AMQ9209E flood)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import List

from mqguard.mq.listener import ListenerProbe, listening
from tests.fakes import FakeClock

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def table(tmp_path: Path, *rows: str) -> str:
    path = tmp_path / "tcp"
    path.write_text(HEADER + "".join(f"   {i}: {r} 00000000:00000000 00:00000000 00000000   978 0 1 1\n"
                                     for i, r in enumerate(rows)))
    return str(path)


def test_listen_state_on_the_port_is_found_in_the_kernels_table(tmp_path: Path) -> None:
    tcp = table(tmp_path, "0100007F:0586 00000000:0000 0A", "00000000:0586 0100007F:D431 01")
    assert listening(0x586, [tcp]) is True
    assert listening(1414, [table(tmp_path, "0100007F:0586 0100007F:D431 01")]) is False  # connected, not LISTEN
    assert listening(1414, [str(tmp_path / "missing")]) is None


def test_a_real_listening_socket_is_seen_without_connecting() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert listening(port) is True
    assert listening(port) is False


def test_connects_at_most_every_ten_minutes_while_listening(tmp_path: Path) -> None:
    """Issue 15 item 14: a connect every poll makes MQ log AMQ9209E each time."""
    tcp = table(tmp_path, "00000000:0586 00000000:0000 0A")
    clock = FakeClock()
    calls: List[int] = []
    probe = ListenerProbe(1414, clock.monotonic, tables=[tcp], connect=lambda p: calls.append(p) or True)
    for _ in range(240):  # 20 minutes of 5 s polls
        assert probe.probe()
        clock.advance(5)
    assert len(calls) == 2


def test_not_listening_is_bad_at_once_and_a_listener_that_returns_is_connected_to(tmp_path: Path) -> None:
    up, down = table(tmp_path, "00000000:0586 00000000:0000 0A"), str(tmp_path / "empty")
    Path(down).write_text(HEADER)
    clock = FakeClock()
    tables = [up]
    answers = [True, False]
    probe = ListenerProbe(1414, clock.monotonic, tables=tables, connect=lambda p: answers.pop(0))
    assert probe.probe() is True
    tables[0] = down
    probe.tables = (down,)
    assert probe.probe() is False
    probe.tables = (up,)
    assert probe.probe() is False  # listening again, but the connect (at once) fails: a wedged listener

