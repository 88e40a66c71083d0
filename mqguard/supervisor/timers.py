"""The machine's timers, in one table: when each fires (``due``, None while it does not run) and how a clean
slate (a pause or its end) stops it. The loop wakes at the earliest due moment (``Machine.next_deadline``);
``Machine.clean_slate`` walks the same table, so a timer added to the rules is woken for and cleared in one
place."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Optional, Tuple

if TYPE_CHECKING:
    from mqguard.supervisor.machine import Machine


@dataclass(frozen=True)
class Timer:
    """One of the machine's timers: when it fires (None while it does not run), and how a clean slate (a pause
    or its end) stops it. The loop wakes at the earliest ``due`` (``next_deadline``); ``clean_slate`` walks
    the same list, so a timer added to the rules is woken for and cleared in one place."""

    name: str
    due: Callable[[Machine], Optional[float]]
    stop: Optional[Callable[[Machine, float], None]]  # None: a clean slate leaves it (it follows the observation)


def _stop_start_wait(m: Machine, now: float) -> None:
    m.seen = replace(m.seen, starting_since=None)


def _stop_deliberate_wait(m: Machine, now: float) -> None:
    m.seen = replace(m.seen, deliberate_since=None)


def _stop_lock_wait(m: Machine, now: float) -> None:
    m.seen = replace(m.seen, elsewhere_since=None)


def _restart_start_up(m: Machine, now: float) -> None:
    m.start.mount_failure_reported = False
    if not m.start.storage_seen:
        m.start.began = now  # the wait for the mount starts again


def _stop_grace(m: Machine, now: float) -> None:
    m.ep.since = None


def _stop_spacing(m: Machine, now: float) -> None:
    m.last_job_end = None


def _stop_budget(m: Machine, now: float) -> None:
    m.budget.clear()


TIMERS: Tuple[Timer, ...] = (
    Timer("mount_timeout", lambda m: m.start.began + m.settings.mount_timeout
          if not m.start.storage_seen and not m.start.mount_failure_reported else None, _restart_start_up),
    Timer("grace_period", lambda m: m.ep.since + m.settings.grace_period
          if m.ep.since is not None and not m.ep.reported else None, _stop_grace),
    Timer("start_timeout", lambda m: m.seen.starting_since + m.settings.start_timeout
          if m.seen.starting_since is not None else None, _stop_start_wait),
    Timer("restart_spacing", lambda m: m.last_job_end + m.settings.restart_spacing
          if m.ep.since is not None and m.last_job_end is not None and m.ep.attempts < m.settings.restart_attempts
          else None, _stop_spacing),
    Timer("deliberate_end_delay", lambda m: m.seen.deliberate_since + m.settings.deliberate_end_delay
          if m.seen.deliberate_since is not None else None, _stop_deliberate_wait),
    Timer("lock_wait", lambda m: m.seen.elsewhere_since + m.settings.lock_wait
          if m.seen.elsewhere_since is not None else None, _stop_lock_wait),
    Timer("restart_window", lambda m: m.budget.frees_at(m.settings.restart_limit, m.settings.restart_window)
          if m.ep.since is not None else None, _stop_budget),
    Timer("pause_end", lambda m: m.pause_ends, None),  # supervision resumes at the second the pause expires
)
