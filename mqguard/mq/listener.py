"""The queue manager's listener: is something listening on its port, and does it accept?

Each TCP connection to MQ's listener that closes without speaking MQ makes MQ
log AMQ9209E (reference: Files): a connect probe every poll fills AMQERR01-03
within hours and buries real errors. So the probe has two parts:

- every poll, the kernel's socket table (/proc/net/tcp, tcp6) is read for a
  socket in LISTEN state on the port: no connection, nothing for MQ to log;
- at most every ``connect_every`` (10 minutes), a real TCP connect within 2 s
  (the contract's listener check), which also catches a listener that still
  owns the port but no longer accepts. That is at most 144 AMQ9209E a day
  instead of 17,280 at a 5 s poll.

mqguard does not set qm.ini ``ExcludeMessage=9209``: it would hide the same
message for real clients whose connections break, which an operator needs.
"""

from __future__ import annotations

import socket
from typing import Callable, Iterable, Optional

LISTENER_TIMEOUT = 2.0
CONNECT_EVERY = 600.0
PROC_NET = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"
_MAX_LINES = 500_000  # a host with very many connections: stop reading rather than grow without bound


def probe_listener(port: int, timeout: float = LISTENER_TIMEOUT) -> bool:
    """A real TCP connect to 127.0.0.1:port (MQ logs AMQ9209E for it: use sparingly)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def listening(port: int, tables: Iterable[str] = PROC_NET) -> Optional[bool]:
    """Whether a socket is in LISTEN state on ``port`` (any address); None when no table can be read."""
    want = f":{port:04X}"
    read_any = False
    for path in tables:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                read_any = True
                for n, line in enumerate(fh):
                    if n > _MAX_LINES:
                        break
                    fields = line.split(None, 4)
                    if len(fields) >= 4 and fields[3] == _LISTEN and fields[1].endswith(want):
                        return True
        except OSError:
            continue
    return False if read_any else None


class ListenerProbe:
    """The per-poll listener verdict: the socket table every time, a real connect now and then."""

    def __init__(self, port: int, clock: Callable[[], float], connect_every: float = CONNECT_EVERY,
                 tables: Iterable[str] = PROC_NET, connect: Callable[[int], bool] = probe_listener) -> None:
        self.port = port
        self.clock = clock
        self.connect_every = connect_every
        self.tables = tuple(tables)
        self.connect = connect
        self.last_connect: Optional[float] = None
        self.connects = 0

    def probe(self) -> bool:
        state = listening(self.port, self.tables)
        if state is False:
            self.last_connect = None  # once it listens again, confirm with a connect at once
            return False
        now = self.clock()
        if state is None or self.last_connect is None or now - self.last_connect >= self.connect_every:
            self.last_connect = now
            self.connects += 1
            return self.connect(self.port)
        return True
