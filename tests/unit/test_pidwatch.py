"""Which execution controller mqguard watches for crash detection (pidfd)."""

from __future__ import annotations

import subprocess

from mqguard.mq.pidwatch import find_controller
from tests.conftest import Harness


def test_the_controller_watched_is_the_one_of_this_installation(sim: object) -> None:
    """Another installation (or another test's simulator) may run a queue manager of the same name."""
    from tests.conftest import Harness

    h: Harness = sim  # type: ignore[assignment]
    other = Harness(h.tmp, h.efs, host="host2")  # type: ignore[arg-type]
    try:
        other.create_by_hand()
        subprocess.run([f"{other.bindir}/strmqm", "QM1"], check=True, capture_output=True, timeout=30)
        assert find_controller("QM1", bin_dir=h.bindir) is None
        assert find_controller("QM1", bin_dir=other.bindir) == other.controllers()[0]
    finally:
        other.cleanup()
