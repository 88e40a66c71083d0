"""One background run at a time (issue 18 item 7: the five hand-written "background job with a bound"
patterns are this one helper now): a hang costs one thread, however often it is asked."""

from __future__ import annotations

import threading

from mqguard.base.offloop import OneAtATime


def test_a_run_gives_its_value_its_error_or_says_it_did_not_finish() -> None:
    runs = OneAtATime[int]("test run")
    assert runs.run(lambda: 41 + 1, 5) == (42, "")
    assert runs.run(lambda: int("x"), 5)[1].startswith("invalid literal")
    gate = threading.Event()
    value, why = runs.run(lambda: gate.wait(30) and 1, 0.05)
    assert value is None and why == "did not finish within 0.05s"
    gate.set()


def test_while_a_run_is_stuck_no_second_thread_is_started() -> None:
    runs = OneAtATime[None]("pause record write")
    gate = threading.Event()
    assert runs.start(lambda: gate.wait(30)) is not None
    before = threading.active_count()
    refused = [runs.run(lambda: None, 0.01) for _ in range(20)]
    assert all(v is None and "still stuck" in why for v, why in refused), refused[0]
    assert threading.active_count() == before and runs.stuck_for is not None
    gate.set()
    for _ in range(200):
        if runs.stuck_for is None:
            break
        threading.Event().wait(0.01)
    assert runs.run(lambda: None, 5) == (None, "")
