"""The queue manager's listener, probed with a TCP connect on 127.0.0.1."""

from __future__ import annotations

import socket

LISTENER_TIMEOUT = 2.0


def probe_listener(port: int, timeout: float = LISTENER_TIMEOUT) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False
