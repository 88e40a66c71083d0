"""What the loop needs from the parts that sit above it (the cluster view): interfaces, so the core never imports
them. ``cli/run.py`` plugs in ``cluster.publisher.HostPublisher`` and ``cluster.peers.PeerStorage``."""

from __future__ import annotations

from typing import Optional, Protocol, Tuple


class HostRecord(Protocol):
    """This host's record for `mqguard list`, kept current on the storage off the loop."""

    def offer(self, state: str, qmgr_status: Optional[str], paused_until: Optional[float], storage_ok: bool,
              storage_detail: str, poll_interval: float) -> None:
        """From the loop, every cycle; never blocks."""

    def flush(self, timeout: float) -> bool:
        """The last offer written within ``timeout`` (at shutdown)."""


class PeerView(Protocol):
    """What the other hosts say of the shared storage while this host's is bad."""

    def tick(self, storage_ok: bool) -> None:
        """From the loop, every cycle; never blocks."""

    def verdict(self) -> Tuple[str, str]:
        """For the observation while this host's storage is bad: (why the outage is shared or "", which peers
        are still being asked or "")."""
