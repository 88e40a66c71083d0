"""systemd's notify protocol: READY, STATUS, WATCHDOG, STOPPING, RELOADING.

Uses systemd-python when importable, else speaks the datagram protocol to
``$NOTIFY_SOCKET`` itself (path or abstract "@name"). Does nothing when not
run by systemd. Watchdog pings are sent only by the supervision loop after a
completed cycle, so a wedged loop stops them and systemd restarts mqguard.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from typing import Any, Callable, Mapping, Optional

log = logging.getLogger(__name__)


def _library_sender() -> Optional[Callable[[str], bool]]:
    try:
        sd_daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None
    notify: Callable[[str], bool] = sd_daemon.notify
    return notify


class Notifier:
    def __init__(self, environ: Optional[Mapping[str, str]] = None, use_library: bool = True) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        self.watchdog_usec = 0
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_usec = int(usec)
        # systemd-python reads $NOTIFY_SOCKET itself: only use it for our own environment
        self._library = _library_sender() if use_library and environ is None else None
        self._sock: Optional[socket.socket] = None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def watchdog_interval(self) -> Optional[float]:
        """How often to ping: half of WatchdogSec, as systemd recommends."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        if self._library is not None:
            return bool(self._library(message))
        return self._send_datagram(message)

    def _send_datagram(self, message: str) -> bool:
        addr = self.address
        target: Any = "\0" + addr[1:] if addr.startswith("@") else addr
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), target)
            return True
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", addr, exc)
            return False

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, line: str) -> None:
        if line != self._last_status:
            self._last_status = line
            self.send(f"STATUS={line}")

    def watchdog(self) -> None:
        if self.watchdog_usec:
            self.send("WATCHDOG=1")

    def reloading(self) -> None:
        usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading configuration")

    def stopping(self, status: str = "stopping") -> None:
        self.send(f"STOPPING=1\nSTATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
