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


def test_mq_9_2s_bare_argv_is_recognised_by_the_executable(tmp_path: object) -> None:
    """Issue 24 item 12: 9.2 runs a bare `amqzxma0 -m QM1 -x` (reference: strmqm); mqguard knew MQ's processes
    only by an absolute argv[0] under mq_bin_dir, so it never cleared a crashed 9.2 instance's leftovers."""
    import os
    import signal
    import time
    from pathlib import Path

    from mqguard.mq.leftovers import find_leftovers
    from tests.conftest import kill_controllers, wait_until
    from tests.sim import mqsim

    base = Path(str(tmp_path))
    bindir = str(base / "bin")
    (base / "shared" / "qmgrs").mkdir(parents=True)
    (base / "shared" / "logs").mkdir()
    ctl = mqsim.install(bindir, str(base / "var"), bare_argv=True)
    try:
        subprocess.run([f"{bindir}/crtmqdir", "-s", "-f"], capture_output=True, timeout=30)
        subprocess.run([f"{bindir}/crtmqm", "-md", str(base / "shared" / "qmgrs"), "-ld", str(base / "shared" / "logs"),
                        "QM1"], check=True, capture_output=True, timeout=30)
        Path(ctl, "children.linger").write_text("60")
        subprocess.run([f"{bindir}/strmqm", "-x", "QM1"], check=True, capture_output=True, timeout=30)
        controller = find_controller("QM1", bin_dir=bindir)
        assert controller == mqsim.controller_pids("QM1", bindir)[0]
        assert open(f"/proc/{controller}/cmdline", "rb").read().startswith(b"amqzxma0\0")
        os.kill(controller, signal.SIGKILL)
        wait_until(lambda: find_controller("QM1", bin_dir=bindir) is None, 10, "the controller gone")
        time.sleep(0.2)
        left = find_leftovers("QM1", bindir)
        assert len(left) == 3, f"the bare children of the dead instance: {left}"
        assert find_leftovers("QM1", str(base / "elsewhere")) == [], "another installation's are not ours"
    finally:
        kill_controllers(bindir)


def test_a_look_alike_amqzxma0_run_by_another_user_is_neither_watched_nor_killed(sim: object) -> None:
    """Security round 3 (low): with the sandbox off, a process any user started with MQ's argv and name was taken
    for the queue manager by the crash watch and the drills (and would be killed as a leftover)."""
    import os
    import time

    from mqguard.efs.statedir import allowed_owners
    from mqguard.mq.leftovers import find_leftovers

    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to run the look-alike as another user")
    h: Harness = sim  # type: ignore[assignment]
    fake = ("import ctypes, sys, time; ctypes.CDLL(None).prctl(15, b'amqzxma0', 0, 0, 0); print('up', flush=True);"
            " time.sleep(60)")
    if not os.path.exists("/usr/bin/python3"):
        import pytest
        pytest.skip("no python3 that another user may run")
    # argv[0] is this installation's amqzxma0 (exec -a), the name (comm) too: all a look-alike can fake
    proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c",
                             'exec -a "$0" /usr/bin/python3 -c "$1" -m QM1 -x -u mqm', f"{h.bindir}/amqzxma0", fake],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
        time.sleep(0.1)
        owners = allowed_owners("mqm")
        assert find_controller("QM1", bin_dir=h.bindir) == proc.pid, "without owners it is taken for MQ"
        assert find_controller("QM1", bin_dir=h.bindir, owners=owners) is None
        assert find_leftovers("QM1", h.bindir, owners=owners) == []
    finally:
        proc.kill()
        proc.wait()


def test_a_controller_that_exits_while_the_loop_is_busy_wakes_the_next_wait_at_once(sim: object) -> None:
    """A drill's kill (or any crash) between two waits: the pidfd of the watched amqzxma0 is already readable when
    the loop comes to wait; that exit must wake it at once, not a poll interval later (found by the drill test:
    the crash was seen 1.03 s after the kill with poll_interval 1s)."""
    import os
    import signal
    import time

    from mqguard.mq.pidwatch import ControllerWatch, wait_for_wake

    h: Harness = sim  # type: ignore[assignment]
    h.create_by_hand()
    subprocess.run([f"{h.bindir}/strmqm", "QM1"], check=True, capture_output=True, timeout=30)
    watch = ControllerWatch("QM1", bin_dir=h.bindir)
    r, w = os.pipe()
    try:
        assert watch.refresh() is not None  # watched, as during the cycle before
        pid = watch.pid
        os.kill(h.controllers()[0], signal.SIGKILL)  # dies while the loop is busy elsewhere
        time.sleep(0.2)
        began = time.monotonic()
        exited = wait_for_wake(r, watch, 5.0)
        took = time.monotonic() - began
        assert exited == pid and took < 1.0, (exited, pid, took)
    finally:
        os.close(r)
        os.close(w)
        watch.close()
