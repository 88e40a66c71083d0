"""Property-based tests (hypothesis): the machine's invariants under random observation
sequences, and the config and dspmq parsers under random input."""

from __future__ import annotations

from typing import List, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqguard.config import values as configvalues
from mqguard.mq.status import ParseError, QmStatus, parse_dspmq
from mqguard.supervisor.machine import (
    ActionKind,
    JobOutcome,
    JobResult,
    JobStage,
    Machine,
    Observation,
    Settings,
)

GRACE = 30.0

step = st.tuples(
    st.floats(min_value=0.1, max_value=20.0),  # seconds since the last step
    st.booleans() | st.just(True),  # storage ok (mostly)
    st.sampled_from([None, *QmStatus]),  # dspmq status
    st.sampled_from([None, True, False]),  # listener
    st.sampled_from([None, JobStage.STARTING]),  # a job running
    st.sampled_from([None, JobOutcome.UP, JobOutcome.FAILED, JobOutcome.ELSEWHERE]),  # a job finished
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=80), st.booleans())
def test_machine_invariants_hold_for_any_observation_sequence(steps: List[tuple], multi: bool) -> None:  # type: ignore[type-arg]
    m = Machine(Settings(grace_period=GRACE, restart_attempts=3, mount_timeout=600, start_timeout=300,
                         multi_instance=multi, listener_probe=True, restart_spacing=1.0, restart_limit=5,
                         restart_window=600), started_at=0.0)
    now = 0.0
    reports_in_episode = 0
    episode: Optional[int] = None
    restarts: List[float] = []
    for dt, storage, status, listener, stage, outcome in steps:
        now += dt
        result = JobResult(outcome, "x") if outcome else None
        v = m.step(Observation(now=now, storage_ok=storage, storage_detail="bad" if not storage else "",
                               qmgr=status, listener_ok=listener, job_stage=stage, job_result=result))
        if m.episode != episode:
            episode, reports_in_episode = m.episode, 0
        for action in v.actions:
            if action.kind == ActionKind.REPORT_UNHEALTHY:
                reports_in_episode += 1
                assert reports_in_episode == 1, "two reports in one episode"
                if "start_timeout" not in action.reason and "storage not ready" not in action.reason \
                        and "still starting" not in action.reason:
                    assert m.bad_since is not None and now - m.bad_since >= GRACE, "reported before the grace period"
            if action.kind == ActionKind.BRING_UP and m.jobs_started > 1:
                assert storage, "a local restart while storage is bad"
                assert status != QmStatus.RUNNING_ELSEWHERE or multi, "a restart against a queue manager elsewhere"
                restarts.append(now)
        assert len([t for t in restarts if t > now - 600]) <= 5, "restart budget exceeded"
        assert v.healthy == (not v.bad_reasons and v.state.value in ("running", "standby"))


@given(st.text(max_size=300))
def test_dspmq_parser_never_fails_other_than_parse_error(text: str) -> None:
    try:
        entries = parse_dspmq(text)
    except ParseError:
        return
    for entry in entries:
        assert isinstance(entry.status, QmStatus)
        assert f"QMNAME({entry.name})".lower() in text.lower()


@given(st.text(max_size=60))
def test_duration_parser_gives_a_finite_value_or_value_error(text: str) -> None:
    parse = configvalues.duration(0.1, 3600)
    try:
        value = parse(text)
    except ValueError:
        return
    assert 0.1 <= value <= 3600


@given(st.text(max_size=200))
def test_every_schema_parser_raises_only_value_error(text: str) -> None:
    from mqguard.config import SCHEMA

    for options in SCHEMA.values():
        for option in options.values():
            try:
                option.parse(configvalues.bounded(text))
            except ValueError:
                pass
