"""The pure state machine, driven with a fake clock: hours of behaviour, no sleeping."""

from __future__ import annotations

import pytest

from mqguard.mq.status import QmStatus
from mqguard.supervisor.machine import (
    ActionKind,
    JobOutcome,
    JobResult,
    JobStage,
    Observation,
    State,
    Verdict,
)
from tests.unit.supervisor.machine_driver import ENDED, FAILED, UP, Driver, R, kinds

CRASHED = QmStatus.ENDED_UNEXPECTEDLY


def test_waits_for_storage_then_brings_up_once() -> None:
    d = Driver()
    v = d.step(storage=False)
    assert v.state is State.WAITING_FOR_STORAGE and v.actions == []
    v = d.step(after=300, storage=False)
    assert v.state is State.WAITING_FOR_STORAGE and v.actions == []
    v = d.step(after=5)
    assert v.state is State.PREPARING and kinds(v) == [ActionKind.BRING_UP]
    v = d.step(after=1, stage=JobStage.PREPARING)
    assert v.state is State.PREPARING and v.actions == []
    v = d.step(after=1, stage=JobStage.STARTING, qmgr=QmStatus.STARTING)
    assert v.state is State.STARTING and v.actions == []
    v = d.step(after=1, qmgr=R, result=UP)
    assert v.state is State.RUNNING and v.healthy and kinds(v) == [ActionKind.MQ_READY]


def test_mount_timeout_is_reported_at_once_and_only_once() -> None:
    d = Driver(mount_timeout=600)
    d.step(storage=False)
    v = d.step(after=599, storage=False)
    assert v.actions == []
    v = d.step(after=1, storage=False)
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY] and v.state is State.FAILED
    for _ in range(5):
        assert d.step(after=60, storage=False).actions == []
    assert d.reports() == 1


def test_crash_is_restarted_at_once_and_not_reported() -> None:
    d = Driver()
    d.up()
    v = d.step(after=10, qmgr=ENDED)
    assert v.state is State.RECOVERING
    assert kinds(v) == [ActionKind.BRING_UP] and "1/3" in v.actions[0].reason
    v = d.step(after=0.5, stage=JobStage.STARTING, qmgr=ENDED)
    assert v.state is State.RECOVERING and v.actions == []
    v = d.step(after=0.5, qmgr=R, result=UP)
    assert v.state is State.RUNNING and v.healthy
    assert d.m.bad_since is None and d.m.restarts_total == 1
    assert d.reports() == 0


def test_persistent_start_failure_uses_budget_then_reports_once_after_grace() -> None:
    d = Driver(grace_period=60, restart_attempts=3, restart_spacing=5)
    d.up()
    t0 = d.clock.monotonic() + 1
    starts = 0
    reported_at = None
    v = d.step(after=1, qmgr=ENDED)
    starts += kinds(v).count(ActionKind.BRING_UP)
    job_running = bool(starts)
    for _ in range(40):  # 40 polls of 5 s: every started job fails within the poll
        v = d.step(after=5, qmgr=ENDED, result=FAILED if job_running else None)
        job_running = ActionKind.BRING_UP in kinds(v)
        starts += int(job_running)
        if ActionKind.REPORT_UNHEALTHY in kinds(v) and reported_at is None:
            reported_at = d.clock.monotonic()
    assert starts == 3
    assert d.reports() == 1
    assert reported_at is not None and 60 <= reported_at - t0 < 65
    assert d.m.state is State.FAILED


def test_no_restart_after_report_in_same_episode() -> None:
    d = Driver(grace_period=10, restart_attempts=100, restart_spacing=1, lock_wait=0)
    d.up()
    d.step(after=1, qmgr=QmStatus.RUNNING_ELSEWHERE)
    d.step(after=11, qmgr=ENDED)  # reported here (elsewhere/ended for 11s)
    assert d.reports() == 1
    before = d.m.restarts_total
    for _ in range(5):
        assert ActionKind.BRING_UP not in kinds(d.step(after=2, qmgr=ENDED))
    assert d.m.restarts_total == before


def test_running_elsewhere_is_bad_but_never_started_single_instance() -> None:
    d = Driver(grace_period=30, lock_wait=0)
    d.up()
    for _ in range(7):  # the episode starts at the first bad observation: 6 x 5 s later it is 30 s old
        v = d.step(after=5, qmgr=QmStatus.RUNNING_ELSEWHERE)
        assert ActionKind.BRING_UP not in kinds(v)
    assert d.reports() == 1
    assert d.m.state is State.FAILED


def test_starting_is_not_yet_until_start_timeout_then_reported_at_once() -> None:
    d = Driver(grace_period=10, start_timeout=100)
    d.up()
    d.step(after=1, qmgr=QmStatus.STARTING)
    for _ in range(9):
        v = d.step(after=10, qmgr=QmStatus.STARTING)
        assert v.state is State.STARTING and v.actions == [], v.line
    v = d.step(after=10, qmgr=QmStatus.STARTING)
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY] and "still starting" in v.actions[0].reason


def test_start_job_that_times_out_during_start_up_is_reported_at_once() -> None:
    d = Driver(grace_period=600)
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=300, qmgr=QmStatus.ENDED_IMMEDIATELY, result=JobResult(JobOutcome.TIMED_OUT, "strmqm 300s"))
    assert ActionKind.REPORT_UNHEALTHY in kinds(v)
    assert v.state is State.FAILED


def test_first_start_failing_opens_an_episode_with_a_full_restart_budget() -> None:
    d = Driver(grace_period=60, restart_attempts=2, restart_spacing=0)
    d.step()
    v = d.step(after=1, qmgr=QmStatus.ENDED_IMMEDIATELY, result=FAILED)
    assert v.state is State.RECOVERING and kinds(v) == [ActionKind.BRING_UP]
    v = d.step(after=1, qmgr=QmStatus.ENDED_IMMEDIATELY, result=FAILED)
    assert kinds(v) == [ActionKind.BRING_UP]
    v = d.step(after=1, qmgr=QmStatus.ENDED_IMMEDIATELY, result=FAILED)
    assert v.actions == []


def test_storage_bad_blocks_restarts_and_reports_after_grace() -> None:
    d = Driver(grace_period=60)
    d.up()
    for i in range(13):
        v = d.step(after=5, storage=False, qmgr=None, detail="not checked while storage is bad")
        assert ActionKind.BRING_UP not in kinds(v)
        if i < 12:
            assert v.state is State.RECOVERING
    assert d.reports() == 1 and d.m.state is State.FAILED
    v = d.step(after=5, qmgr=R)
    assert v.state is State.RUNNING and d.m.bad_since is None


def test_listener_down_is_bad_while_active_without_restart() -> None:
    d = Driver(grace_period=20)
    d.up()
    for _ in range(5):
        v = d.step(after=5, qmgr=R, listener=False)
        assert ActionKind.BRING_UP not in kinds(v)
        assert "listener" in " ".join(v.bad_reasons)
    assert d.reports() == 1


def test_listener_probe_off() -> None:
    d = Driver(listener_probe=False)
    d.up()
    assert d.step(after=5, qmgr=R, listener=False).healthy


def test_dspmq_failure_is_bad_but_not_restarted() -> None:
    d = Driver(grace_period=10)
    d.up()
    v = d.step(after=5, qmgr=None, detail="dspmq timed out after 15.0s")
    assert not v.healthy and v.actions == [] and "dspmq timed out" in v.bad_reasons[0]
    d.step(after=10, qmgr=None, detail="dspmq timed out")
    assert d.reports() == 1


def test_flapping_does_not_report_when_each_episode_is_short() -> None:
    d = Driver(grace_period=60, restart_limit=1000)
    d.up()
    for _ in range(20):
        d.step(after=30, qmgr=ENDED)
        d.step(after=1, qmgr=R, result=UP)
    assert d.reports() == 0
    assert d.m.restarts_total == 20


def test_new_episode_after_recovery_can_report_again() -> None:
    d = Driver(grace_period=10, restart_attempts=0)
    d.up()
    d.step(after=1, qmgr=ENDED)
    d.step(after=10, qmgr=ENDED)
    assert d.reports() == 1
    assert d.step(after=1, qmgr=R).state is State.RUNNING
    d.step(after=1, qmgr=ENDED)
    d.step(after=10, qmgr=ENDED)
    assert d.reports() == 2


def test_going_away_never_starts() -> None:
    d = Driver()
    v = d.step(going_away=True)
    assert kinds(v) == [ActionKind.END_FOR_TERMINATION] and v.state is State.STOPPING
    d2 = Driver()
    d2.up()
    v = d2.step(after=5, qmgr=ENDED, going_away=True)
    assert ActionKind.BRING_UP not in kinds(v)


def test_multi_instance_standby_is_healthy_and_elsewhere_starts_a_standby() -> None:
    d = Driver(multi_instance=True)
    d.step()
    v = d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "standby"))
    assert v.state is State.STANDBY and v.healthy
    v = d.step(after=5, qmgr=QmStatus.RUNNING_ELSEWHERE)
    assert kinds(v) == [ActionKind.BRING_UP]
    v = d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "standby"))
    assert v.state is State.STANDBY
    v = d.step(after=5, qmgr=R)
    assert v.state is State.RUNNING and kinds(v) == [ActionKind.APPLY_MQSC]


def test_standby_is_bad_without_multi_instance() -> None:
    d = Driver(multi_instance=False)
    d.up()
    v = d.step(after=5, qmgr=QmStatus.RUNNING_AS_STANDBY)
    assert not v.healthy and v.state is State.RECOVERING


def test_next_deadline_is_the_grace_expiry_and_only_in_the_future() -> None:
    d = Driver(grace_period=60, restart_attempts=0, lock_wait=0)
    d.up()
    d.step(after=5, qmgr=QmStatus.RUNNING_ELSEWHERE)
    start = d.m.bad_since
    assert start is not None
    assert d.m.next_deadline(d.clock.monotonic()) == pytest.approx(start + 60)
    d.step(after=61, qmgr=QmStatus.RUNNING_ELSEWHERE)
    assert d.reports() == 1
    assert d.m.next_deadline(d.clock.monotonic()) is None


def test_verdict_key_ignores_episode_age() -> None:
    d = Driver(grace_period=600, restart_attempts=0, lock_wait=0)
    d.up()
    a = d.step(after=5, qmgr=QmStatus.RUNNING_ELSEWHERE)
    b = d.step(after=5, qmgr=QmStatus.RUNNING_ELSEWHERE)
    assert a.line != b.line and a.key == b.key


def test_going_away_stops_everything_and_is_never_healthy() -> None:
    d = Driver(grace_period=5, mount_timeout=10)
    d.up()
    v = d.step(after=1, qmgr=R, going_away=True)
    assert v.state is State.STOPPING and not v.healthy and kinds(v) == [ActionKind.END_FOR_TERMINATION]
    for _ in range(10):  # the queue manager ends (we end it): no restart, no report, no second end
        v = d.step(after=5, qmgr=QmStatus.ENDED_NORMALLY, going_away=True, stage=JobStage.ENDING)
        assert v.actions == [] and v.state is State.STOPPING
    waiting = Driver(mount_timeout=10)
    assert kinds(waiting.step(after=60, storage=False, going_away=True)) == [ActionKind.END_FOR_TERMINATION], \
        "no mount-timeout report either"


def test_mq_ready_is_announced_once() -> None:
    d = Driver()
    d.step()
    v = d.step(after=1, qmgr=R, result=UP)
    assert ActionKind.MQ_READY in kinds(v)
    d.step(after=5, qmgr=ENDED)
    v = d.step(after=1, qmgr=R, result=UP)
    assert ActionKind.MQ_READY not in kinds(v)
    assert sum(kinds(x).count(ActionKind.MQ_READY) for x in d.verdicts) == 1


def test_takeover_is_seen_even_through_starting() -> None:
    """A standby that becomes active may show STARTING (log replay) in between."""
    d = Driver(multi_instance=True)
    d.step()
    d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "standby"))
    v = d.step(after=1, qmgr=QmStatus.STARTING)
    assert v.state is State.STARTING and v.actions == []
    v = d.step(after=1, qmgr=R)
    assert kinds(v) == [ActionKind.APPLY_MQSC]
    assert ActionKind.APPLY_MQSC not in kinds(d.step(after=5, qmgr=R)), "only once per takeover"


def test_no_takeover_mqsc_when_our_own_start_made_it_active() -> None:
    """A bring-up that starts the queue manager active applies MQSC itself."""
    d = Driver(multi_instance=True)
    d.step()
    d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "standby"))
    v = d.step(after=5, qmgr=QmStatus.ENDED_UNEXPECTEDLY)
    assert kinds(v) == [ActionKind.BRING_UP]
    v = d.step(after=1, qmgr=R, result=JobResult(JobOutcome.UP, "started", mqsc_applied=True))
    assert ActionKind.APPLY_MQSC not in kinds(v)


def test_takeover_during_a_restart_attempt_still_applies_mqsc() -> None:
    """The standby glimpses 'ended' mid-takeover, starts a restart, and the job only adopts."""
    d = Driver(multi_instance=True, restart_spacing=0)
    d.step()
    d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=JobResult(JobOutcome.UP, "standby"))
    assert kinds(d.step(after=1, qmgr=QmStatus.ENDED_UNEXPECTEDLY)) == [ActionKind.BRING_UP]
    v = d.step(after=1, qmgr=R, result=JobResult(JobOutcome.UP, "adopted the running queue manager"))
    assert kinds(v) == [ActionKind.APPLY_MQSC]


def test_crash_loop_spends_the_restart_budget_then_is_reported() -> None:
    """A queue manager that crashes every ~30 s used to be restarted for ever and never reported."""
    d = Driver(grace_period=60, restart_attempts=3, restart_limit=6, restart_window=3600, restart_spacing=1)
    d.up()
    for _ in range(6):
        assert kinds(d.step(after=30, qmgr=ENDED)) == [ActionKind.BRING_UP]
        d.step(after=1, qmgr=R, result=UP)
    assert d.m.restarts_total == 6 and d.m.budget_remaining(d.clock.monotonic()) == 0 and d.reports() == 0
    v = d.step(after=30, qmgr=ENDED)
    assert v.actions == [] and v.state is State.RECOVERING
    assert "6 restarts in the last 1h: not restarting here again; the instance will be reported" in v.line
    assert d.m.next_deadline(d.clock.monotonic()) is not None
    v = d.step(after=60, qmgr=ENDED)
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY] and v.state is State.FAILED
    assert d.m.restarts_total == 6


def test_restart_budget_frees_up_as_the_window_moves() -> None:
    d = Driver(grace_period=600, restart_attempts=10, restart_limit=2, restart_window=100, restart_spacing=0)
    d.up()
    for _ in range(2):
        assert kinds(d.step(after=10, qmgr=ENDED)) == [ActionKind.BRING_UP]
        d.step(after=1, qmgr=R, result=UP)
    assert kinds(d.step(after=10, qmgr=ENDED)) == []  # budget spent: 2 in the last 100 s
    first_restart = d.m.budget.times[0]
    wake = d.m.next_deadline(d.clock.monotonic())
    assert wake == first_restart + 100
    d.clock.advance(wake - d.clock.monotonic())
    assert kinds(d.step(qmgr=ENDED)) == [ActionKind.BRING_UP]
    assert d.m.budget_remaining(d.clock.monotonic()) == 0


def test_zero_restart_limit_never_restarts_locally() -> None:
    d = Driver(grace_period=10, restart_limit=0)
    d.up()
    assert kinds(d.step(after=1, qmgr=ENDED)) == []
    assert kinds(d.step(after=10, qmgr=ENDED)) == [ActionKind.REPORT_UNHEALTHY]


# -- issue 15: "Running elsewhere" on a single instance is a wait (lock_wait), not a fault ------------------

ELSEWHERE = QmStatus.RUNNING_ELSEWHERE
ELSEWHERE_JOB = JobResult(JobOutcome.ELSEWHERE, "an active instance runs elsewhere (exit 43)")


def test_a_stale_lock_elsewhere_is_waited_for_then_the_queue_manager_is_started_here() -> None:
    """A dead host's NFS lock lasts until its lease expires: wait (no episode, no report), start once it clears."""
    d = Driver(grace_period=10.0, lock_wait=180.0)
    assert kinds(d.step()) == [ActionKind.BRING_UP]
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=ELSEWHERE, result=ELSEWHERE_JOB)
    for _ in range(17):  # 170 s: far past grace_period, still inside lock_wait
        v = d.step(after=10, qmgr=ELSEWHERE)
        assert v.state is State.STARTING and not v.bad_reasons and d.m.bad_since is None, v.line
    assert d.reports() == 0 and "lock" in v.line
    v = d.step(after=5, qmgr=QmStatus.ENDED_UNEXPECTEDLY)  # the lease expired: the lock is gone
    assert kinds(v) == [ActionKind.BRING_UP]
    d.step(after=1, stage=JobStage.STARTING)
    assert d.step(after=1, qmgr=R, result=UP).state is State.RUNNING
    assert d.reports() == 0


def test_running_elsewhere_past_lock_wait_counts_as_bad_and_is_reported_after_the_grace_period() -> None:
    d = Driver(grace_period=10.0, lock_wait=30.0)
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    d.step(after=1, qmgr=ELSEWHERE, result=ELSEWHERE_JOB)
    v = d.step(after=29, qmgr=ELSEWHERE)
    assert not v.bad_reasons and d.m.next_deadline(d.clock.monotonic()) is not None
    v = d.step(after=1.5, qmgr=ELSEWHERE)
    assert v.bad_reasons and "elsewhere" in v.bad_reasons[0] and d.reports() == 0
    assert ActionKind.BRING_UP not in kinds(v), "never strmqm against another host's instance"
    d.step(after=10, qmgr=ELSEWHERE)
    assert d.reports() == 1


def test_lock_wait_does_not_apply_to_multi_instance() -> None:
    d = Driver(multi_instance=True, lock_wait=180.0)
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=ELSEWHERE, result=ELSEWHERE_JOB)
    assert v.bad_reasons or kinds(v) == [ActionKind.BRING_UP]  # a missing standby is started at once


def test_a_listener_that_stops_during_a_switchover_is_not_a_fault() -> None:
    """endmqm -s ends the listener while dspmq still says RUNNING: seen once in CI as "recovering"."""
    d = Driver()
    d.up()
    v = d.step(after=1, qmgr=R, listener=False, stage=JobStage.SWITCHING)
    assert not v.bad_reasons and d.m.bad_since is None and d.reports() == 0
    v = d.step(after=1, qmgr=R, listener=False)  # no switchover: it is bad again
    assert v.bad_reasons == ["listener not accepting connections"]


def test_a_bring_up_that_could_not_even_be_begun_is_asked_for_again_not_counted_as_a_start() -> None:
    """Issue 18 item 4: an exception while executing BRING_UP lost the job; the machine then waited for a
    queue manager that nobody was preparing and reported the instance after the grace period."""
    d = Driver(grace_period=60)
    assert kinds(d.step()) == [ActionKind.BRING_UP]
    d.m.not_begun(ActionKind.BRING_UP)
    v = d.step(after=0.2, detail="not prepared yet")
    assert kinds(v) == [ActionKind.BRING_UP], "the first bring-up is asked for again at once"
    # a restart attempt that is lost is not counted against the attempts or the budget either
    d.step(after=1, stage=JobStage.STARTING)
    d.step(after=1, qmgr=R, result=UP)
    v = d.step(after=1, qmgr=CRASHED)
    assert kinds(v) == [ActionKind.BRING_UP]
    before = (d.m.attempts - 1, d.m.budget_remaining(d.clock.monotonic()) + 1)
    d.m.not_begun(ActionKind.BRING_UP)
    assert (d.m.attempts, d.m.budget_remaining(d.clock.monotonic())) == before
    v = d.step(after=0.2, qmgr=CRASHED)
    assert kinds(v) == [ActionKind.BRING_UP]
    # but the episode's clock runs on: an effect that always fails still ends in a report
    for _ in range(400):
        d.m.not_begun(ActionKind.BRING_UP)
        v = d.step(after=0.2, qmgr=CRASHED)
        if ActionKind.REPORT_UNHEALTHY in kinds(v):
            break
    assert ActionKind.REPORT_UNHEALTHY in kinds(v)


@pytest.mark.parametrize("never", [False, True])
def test_termination_is_the_machines_decision_once_and_waits_for_a_running_job(never: bool) -> None:
    """Issue 18 item 2: the termination job (and stop_on_exit = never) was decided in the daemon."""
    d = Driver(leave_on_termination=never)
    d.up()
    want = ActionKind.COMPLETE_TERMINATION if never else ActionKind.END_FOR_TERMINATION
    v = d.step(after=1, qmgr=R, going_away=True, stage=JobStage.CONFIGURING)
    assert v.state is State.STOPPING and want not in kinds(v), "a running job is waited for"
    v = d.step(after=1, qmgr=R, going_away=True)
    assert kinds(v) == [want]
    assert d.m.termination_begun
    v = d.step(after=1, qmgr=R, going_away=True, stage=JobStage.ENDING)
    assert kinds(v) == [], "once"
    d.m.not_begun(want)  # the worker was taken meanwhile: asked again on the next step
    v = d.step(after=1, qmgr=R, going_away=True)
    assert kinds(v) == [want]


def test_a_takeovers_mqsc_waits_for_the_worker_and_is_never_dropped() -> None:
    """Issue 18 item 2: the pending MQSC apply was a flag of the daemon's."""
    d = Driver(multi_instance=True)
    assert kinds(d.step()) == [ActionKind.BRING_UP]
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=QmStatus.RUNNING_AS_STANDBY, result=UP)
    assert v.state is State.STANDBY
    v = d.step(after=1, qmgr=R, stage=JobStage.SWITCHING)
    assert ActionKind.APPLY_MQSC not in kinds(v) and d.m.mqsc_pending, "the worker is busy: pending"
    v = d.step(after=1, qmgr=R)
    assert ActionKind.APPLY_MQSC in kinds(v) and not d.m.mqsc_pending
    d.m.not_begun(ActionKind.APPLY_MQSC)
    assert d.m.mqsc_pending
    v = d.step(after=1, qmgr=R)
    assert ActionKind.APPLY_MQSC in kinds(v)
    v = d.step(after=1, qmgr=R, going_away=True)
    assert ActionKind.APPLY_MQSC not in kinds(v), "never while going away"


def test_a_pause_ending_is_a_deadline_of_the_machine_and_settings_change_only_through_it() -> None:
    """Issue 18 item 2: the pause-expiry wake-up and the writes to machine.state/settings were the daemon's."""
    from dataclasses import replace as dc_replace

    from mqguard.supervisor.model import Observation

    d = Driver(grace_period=60)
    d.up()
    now = d.clock.monotonic() + 1
    d.m.step(Observation(now=now, storage_ok=True, qmgr=R, listener_ok=True, paused=True, pause_ends=now + 30))
    assert d.m.next_deadline(now) == now + 30, "the machine wakes the loop when the pause ends"
    d.m.step(Observation(now=now + 1, storage_ok=True, qmgr=R, listener_ok=True))
    assert d.m.next_deadline(now + 1) is None
    d.m.reconfigure(dc_replace(d.m.settings, grace_period=5.0))
    assert d.m.settings.grace_period == 5.0
    d.m.stop()
    assert d.m.state is State.STOPPING


def test_an_mq_ready_warm_ready_or_report_that_raised_is_asked_for_again() -> None:
    """Issue 24 item 11: only job actions were re-armed by not_begun; a lost MQ_READY left the launch hook to
    time out (and with DefaultResult: ABANDON the group terminated a healthy instance), a lost report was never
    sent."""
    d = Driver()
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=R, result=UP)
    assert ActionKind.MQ_READY in kinds(v)
    d.m.not_begun(ActionKind.MQ_READY)  # threading.Thread().start() raised: "can't start new thread"
    assert ActionKind.MQ_READY in kinds(d.step(after=1, qmgr=R)), "announced again"
    assert ActionKind.MQ_READY not in kinds(d.step(after=1, qmgr=R)), "and only once when it began"

    w = Driver()
    assert kinds(w.step(warm=True)) == [ActionKind.WARM_READY]
    w.m.not_begun(ActionKind.WARM_READY)
    assert kinds(w.step(after=1, warm=True)) == [ActionKind.WARM_READY]
    assert kinds(w.step(after=1, warm=True)) == []

    r = Driver(grace_period=10.0, restart_attempts=0)
    r.up()
    r.step(after=1, qmgr=CRASHED)
    v = r.step(after=11, qmgr=CRASHED)
    assert ActionKind.REPORT_UNHEALTHY in kinds(v)
    r.m.not_begun(ActionKind.REPORT_UNHEALTHY)
    assert ActionKind.REPORT_UNHEALTHY in kinds(r.step(after=1, qmgr=CRASHED)), "reported again while still bad"
    assert r.reports() == 2 and r.m.reported_in_episode


def test_resume_restarts_the_lock_wait_like_every_other_timer() -> None:
    """Issue 24 item 11, decided: a pause and resume is a clean slate for every timer, lock_wait included (the
    operator may have moved the queue manager meanwhile: the full wait applies again)."""
    d = Driver(grace_period=10.0, lock_wait=60.0)
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    d.step(after=1, qmgr=ELSEWHERE, result=ELSEWHERE_JOB)
    d.step(after=50, qmgr=ELSEWHERE)
    d.step(after=1, qmgr=ELSEWHERE, paused=True)
    d.step(after=1, qmgr=ELSEWHERE, paused=False)  # resumed
    v = d.step(after=30, qmgr=ELSEWHERE)  # 82 s since first seen elsewhere, 30 s since the resume
    assert not v.bad_reasons and "lock" in v.line, v.line
    v = d.step(after=31, qmgr=ELSEWHERE)
    assert v.bad_reasons and "past lock_wait" in v.bad_reasons[0]


def test_a_held_bring_up_is_never_tried_again_and_reported_once_only_when_a_replacement_cures_it() -> None:
    """Contract section 25: an older MQ on newer data is reported at once (no local restarts first); lost data is
    reported never (a replacement would find the same); both stay failed, saying why, until MQ runs here."""
    older = JobResult(JobOutcome.FAILED, "older MQ", hold="this host's IBM MQ 9.3 is an earlier release", report_now=True)
    d = Driver(grace_period=60.0, restart_attempts=3)
    d.step()
    d.step(after=1, stage=JobStage.STARTING)
    v = d.step(after=1, qmgr=QmStatus.ENDED_NORMALLY, result=older)
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY] and v.state is State.FAILED
    for _ in range(30):
        v = d.step(after=10, qmgr=QmStatus.ENDED_NORMALLY)
        assert kinds(v) == [] and v.state is State.FAILED and "earlier release" in v.bad_reasons[0]
    assert d.reports() == 1 and d.m.restarts_total == 0
    v = d.step(after=1, qmgr=R)  # an operator started it with the right MQ
    assert v.state is State.RUNNING and not d.m.hold

    lost = JobResult(JobOutcome.FAILED, "data", hold="QM1's data is not in /MQHA/qmgrs", report_now=False)
    e = Driver(grace_period=10.0)
    e.step()
    e.step(after=1, stage=JobStage.PREPARING)
    e.step(after=1, result=lost)
    for _ in range(20):
        v = e.step(after=10)
        assert v.state is State.FAILED and kinds(v) == []
    assert e.reports() == 0, "a replacement would find the same: never reported"


def test_a_pause_before_the_queue_manager_ever_ran_keeps_the_launch_alive_once() -> None:
    """Issue 27: pausing a fresh instance never completed its launch hook, so Auto Scaling terminated the instance
    being investigated when the hook timed out (~17 min in the kit). The launch is kept alive while paused (the
    pause always expires, at most [control] pause_max); after the pause MQ comes up and completes it."""
    d = Driver()
    v = d.step(qmgr=None, paused=True)
    assert v.state == State.PAUSED and kinds(v) == [ActionKind.KEEP_LAUNCH]
    assert kinds(d.step(after=5, qmgr=None, paused=True)) == [], "asked once per pause"
    v = d.step(after=5, qmgr=None, paused=False)  # resumed: the first bring-up, then MQ_READY completes the hook
    assert kinds(v) == [ActionKind.BRING_UP]
    d.step(after=1, qmgr=R, stage=None, result=UP)
    # a pause once the queue manager has run: the launch hook is long completed, nothing to keep alive
    assert kinds(d.step(after=5, qmgr=R, paused=True)) == []


def test_storage_bad_on_every_host_is_not_reported_replacing_instances_cannot_cure_the_file_system() -> None:
    """Issue 27 item 3: when the peers say their storage is bad too, the file system itself is in trouble; reporting
    would only replace every instance (each new one meets the same EFS, and MQ on a hard mount would have gone on
    when EFS came back). Nothing is reported while that lasts; once a peer's storage is good again, this host's
    own trouble is reported at once (the grace period is long past)."""
    d = Driver(grace_period=60.0)
    d.step(qmgr=R, result=UP)
    everywhere = "storage bad on every host: i-b (probe timed out)"
    v = d.step(after=5, storage=False, everywhere=everywhere)
    for _ in range(10):
        v = d.step(after=30, storage=False, everywhere=everywhere)
        assert ActionKind.REPORT_UNHEALTHY not in kinds(v)
    assert any("every host" in n and "not reporting" in n for n in v.notes), v.notes
    v = d.step(after=5, storage=False, everywhere="")  # the peer's storage is good: the trouble is this host's
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY]


def test_the_report_waits_for_the_peers_answer_while_it_is_being_asked() -> None:
    """A loaded machine answered the peer's question after this host's grace period had run out: it reported
    although the storage was bad on both hosts (seen once in `make test`). While the peers have not answered yet
    (bounded by the peer module), the machine holds the report; when the wait ends without an answer, it reports."""
    d = Driver(grace_period=3.0)
    d.step(qmgr=R, result=UP)
    waiting = "asking i-b whether its storage is bad too"
    v = d.step(after=1, storage=False, waiting=waiting)
    for _ in range(4):
        v = d.step(after=2, storage=False, waiting=waiting)
        assert ActionKind.REPORT_UNHEALTHY not in kinds(v)
    assert any(waiting in n for n in v.notes), v.notes
    v = d.step(after=1, storage=False, waiting="")  # no answer within the bound: nothing known, report as always
    assert kinds(v) == [ActionKind.REPORT_UNHEALTHY]


def test_operator_asks_are_answered_by_the_machine() -> None:
    """Issue 29 item 3 (and security round 3, low): drills enter as observations; the machine refuses them unless
    the queue manager is healthy, not paused, not going away, and the last drill is [control] drill_interval
    ago (ten `drill unhealthy` were ten SetInstanceHealth calls); an accepted one is an action carrying the ask."""
    from mqguard.supervisor.model import DRILL_SAYS, Ask, Drill, OperatorAsk

    d = Driver(drill_interval=300.0)
    crash = OperatorAsk(Ask.DRILL, who="op1", drill=Drill.CRASH)

    def ask(a: OperatorAsk, **obs: object) -> Verdict:
        fields = dict(now=d.clock.monotonic(), storage_ok=True, qmgr=R, listener_ok=True, ask=a)
        fields.update(obs)
        return d.m.step(Observation(**fields))  # type: ignore[arg-type]

    v = ask(crash, qmgr=None, storage_ok=False)
    assert v.answer is not None and not v.answer[0] and "healthy queue manager" in v.answer[1]
    d.up()
    d.step(after=1, qmgr=R)
    v = ask(crash)
    assert v.answer == (True, DRILL_SAYS[Drill.CRASH])
    assert [a.kind for a in v.actions] == [ActionKind.DRILL] and v.actions[0].ask == crash
    d.clock.advance(60)
    v = ask(OperatorAsk(Ask.DRILL, who="op2", drill=Drill.UNHEALTHY))
    assert v.answer is not None and not v.answer[0] and "one drill per 5m" in v.answer[1] and not v.actions
    d.clock.advance(241)
    v = ask(OperatorAsk(Ask.DRILL, who="op2", drill=Drill.STOP), paused=True)
    assert v.answer is not None and not v.answer[0] and "paused" in v.answer[1]
    d.step(after=1, qmgr=R)  # the pause is over
    v = ask(OperatorAsk(Ask.DRILL, who="op2", drill=Drill.STOP), going_away=True)
    assert v.answer is not None and not v.answer[0] and "going away" in v.answer[1]
    d2 = Driver(drill_interval=300.0, deliberate_end_delay=30.0)
    d2.up()
    d2.step(after=1, qmgr=R)
    v = d2.m.step(Observation(now=d2.clock.monotonic(), storage_ok=True, qmgr=R, listener_ok=True,
                              ask=OperatorAsk(Ask.DRILL, who="op", drill=Drill.STOP)))
    assert v.answer is not None and v.answer[0]
    # the end a stop drill causes is a failure: restarted at once, not after the wait for an operator's strmqm
    v = d2.step(after=1, qmgr=QmStatus.ENDED_IMMEDIATELY)
    assert [a.kind for a in v.actions] == [ActionKind.BRING_UP], v.line


def test_whether_the_queue_manager_is_known_here_is_a_fact_the_machine_owns() -> None:
    """Issue 29 item 3: `prepared` was a flag on the jobs object that the observer and the shutdown read off it;
    now the machine learns it from the worker's news (a stage past preparing, or a result that says so)."""
    from mqguard.supervisor.machine import prepared_after

    assert not prepared_after(False, JobStage.PREPARING, None)
    assert not prepared_after(False, None, JobResult(JobOutcome.FAILED, "crtmqm exit 71"))
    assert prepared_after(False, JobStage.STARTING, None), "the bring-up reached its start: prepare is done"
    assert prepared_after(False, None, JobResult(JobOutcome.FAILED, "strmqm exit 71", prepared=True))
    assert prepared_after(True, None, None), "for the life of the process"
    d = Driver()
    d.step(stage=JobStage.PREPARING)
    assert not d.m.prepared
    d.step(after=1, stage=JobStage.STARTING)
    assert d.m.prepared


def test_every_timer_is_woken_for_and_stopped_by_aclean_slate() -> None:
    """Issue 29 item 4: one list of timers (supervisor/timers.py); next_deadline and the clean slate (pause, resume)
    both walk it, so a timer cannot be woken for and forgotten by a resume, or the reverse."""
    from dataclasses import replace as dc_replace

    from mqguard.supervisor.timers import TIMERS

    d = Driver(restart_limit=1, restart_window=600.0, deliberate_end_delay=2.0)
    m, now = d.m, d.clock.monotonic()
    m.ep.since, m.last_job_end = now, now
    m.seen = dc_replace(m.seen, starting_since=now, deliberate_since=now, elsewhere_since=now)
    m.budget.record(now)
    m.pause_ends = now + 5
    running = {t.name: t.due(m) for t in TIMERS}
    assert all(v is not None and v > now for v in running.values()), running
    assert m.next_deadline(now) == min(v for v in running.values() if v is not None)
    m.clean_slate(now)
    left = {t.name for t in TIMERS if t.due(m) is not None}
    # the mount wait starts again from now (storage never seen here); the pause's end follows the observation
    assert left == {"mount_timeout", "pause_end"}, left
    assert {t.name for t in TIMERS} == {"mount_timeout", "grace_period", "start_timeout", "restart_spacing",
                                        "deliberate_end_delay", "lock_wait", "restart_window", "pause_end"}
