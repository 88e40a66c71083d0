"""The supervision loop survives any exception from an observation or an effect (contract §24,
issue 18 item 4): it logs, counts ``mqguard_cycle_errors_total`` and goes on; shutdown runs
whatever happens. The daemon is built in-process against the MQ simulator and the FUSE EFS,
and the failures are injected into its own methods.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from mqguard import config as config_mod
from mqguard.base.telemetry import Telemetry
from mqguard.cli.run import build_daemon
from mqguard.supervisor.model import State
from tests.conftest import Harness, wait_until
from tests.peers.efs import FakeEfs


def fail_once_at(n: int, fn: Callable[..., Any], what: str, calls: Dict[str, int]) -> Callable[..., Any]:
    """``fn``, except that its n-th call raises."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[what] = calls.get(what, 0) + 1
        if calls[what] == n:
            raise RuntimeError(f"injected failure in {what}")
        return fn(*args, **kwargs)
    return wrapped


def test_an_exception_in_any_observation_or_effect_does_not_end_supervision(
        tmp_path: Path, efs: FakeEfs, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, efs)
    h.configure(health={"poll_interval": "0.2s"})
    try:
        cfg = config_mod.load(str(h.conf))
        tel = Telemetry()
        d = build_daemon(cfg, str(h.conf), telemetry=tel)
        calls: Dict[str, int] = {}
        # one failure in each kind of part: observing, executing an action, publishing, a state listener
        d.observe = fail_once_at(3, d.observe, "observe", calls)  # type: ignore[method-assign]
        d.execute = fail_once_at(1, d.execute, "execute", calls)  # type: ignore[method-assign]
        d._publish = fail_once_at(4, d._publish, "publish", calls)  # type: ignore[method-assign]
        states: List[State] = []

        def listener(new: State, old: State, reason: str, role: str) -> None:
            states.append(new)
            if len(states) == 1:
                raise RuntimeError("injected failure in a state listener")

        d.state_listeners.append(listener)
        result: List[int] = []
        t = threading.Thread(target=lambda: result.append(d.run()), daemon=True)
        with caplog.at_level(logging.INFO):
            t.start()
            wait_until(lambda: d.machine.state is State.RUNNING and calls.get("observe", 0) >= 8, 60,
                       "supervision going on after the injected failures")
            assert tel.cycle_errors == 4, tel.cycle_errors
            d.request_stop()
            t.join(30)
        assert not t.is_alive() and result == [0], "the loop ended through shutdown"
        text = caplog.text
        assert text.count("Traceback") <= 1, "a traceback at most once a minute"
        assert "injected failure in execute" in text and "injected failure in a state listener" in text
        assert "mqguard stopped" in text
        from mqguard.serve.metrics import MqguardCollector

        families = {f.name: f for f in MqguardCollector(lambda: (d.snapshot(), tel), "QM1", efs.path, h.port).collect()}
        assert families["mqguard_cycle_errors"].samples[0].value == 4
    finally:
        h.cleanup()


def test_a_state_listener_that_raises_neither_repeats_the_transition_nor_skips_the_cycle(
        tmp_path: Path, efs: FakeEfs) -> None:
    """Issue 24 item 11: a listener that raised skipped the rest of the cycle (no snapshot) and the next cycle
    notified the same transition again, so the state hook ran twice."""
    h = Harness(tmp_path, efs)
    h.configure(health={"poll_interval": "0.2s"})
    try:
        d = build_daemon(config_mod.load(str(h.conf)), str(h.conf), telemetry=Telemetry())
        seen: List[State] = []
        hook: List[State] = []

        def raising(new: State, old: State, reason: str, role: str) -> None:
            seen.append(new)
            if len(seen) == 1:
                raise RuntimeError("injected failure in a state listener")

        d.state_listeners.append(raising)
        d.state_listeners.append(lambda new, old, reason, role: hook.append(new))
        t = threading.Thread(target=d.run, daemon=True)
        t.start()
        wait_until(lambda: d.machine.state is State.RUNNING and State.RUNNING in hook, 60, "running")
        d.request_stop()
        t.join(30)
        assert hook == seen, "every listener hears every transition, the one after a raising listener too"
        assert hook.count(hook[0]) == 1, f"the first transition was notified again: {hook}"
    finally:
        h.cleanup()
