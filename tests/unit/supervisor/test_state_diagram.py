"""The README's state diagram ("How it decides") checked against the machine: every arrow drawn is driven through
the real rules and must end in the state it points to, the diagram names only real states, and the states it
leaves out are the ones documented elsewhere. A rule change that breaks an arrow fails here, not in a reader's
head at 3 a.m."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, Tuple

from mqguard.mq.status import QmStatus
from mqguard.supervisor.model import JobStage, State
from tests.unit.supervisor.machine_driver import ENDED, FAILED, Driver, R

ROOT = Path(__file__).resolve().parents[3]

Arrow = Tuple[State, State, str]  # (from, to, the words on the arrow in the README)


def _waiting() -> Driver:
    d = Driver(mount_timeout=60.0)
    assert d.step(storage=False).state is State.WAITING_FOR_STORAGE
    return d


def _starting() -> Driver:
    d = Driver(start_timeout=120.0)
    d.step()
    assert d.step(after=1, stage=JobStage.STARTING).state is State.STARTING
    return d


def _running() -> Driver:
    d = Driver(grace_period=60.0, restart_attempts=0)
    d.up()
    return d


def _recovering() -> Driver:
    d = _running()
    assert d.step(after=1, qmgr=ENDED).state is State.RECOVERING
    return d


def _failed() -> Driver:
    d = _recovering()
    assert d.step(after=61, qmgr=ENDED).state is State.FAILED
    return d


ARROWS: Dict[Arrow, Callable[[], State]] = {
    (State.WAITING_FOR_STORAGE, State.PREPARING, "storage good"): lambda: _waiting().step(after=1).state,
    (State.PREPARING, State.STARTING, "preparing ──► starting"): lambda: _starting().m.state,
    (State.STARTING, State.RUNNING, "first healthy dspmq"): lambda: _starting().step(after=1, qmgr=R).state,
    (State.WAITING_FOR_STORAGE, State.FAILED, "mount_timeout"):
        lambda: _waiting().step(after=61, storage=False).state,
    (State.STARTING, State.FAILED, "start_timeout"):
        lambda: _starting().step(after=121, stage=JobStage.STARTING, qmgr=QmStatus.STARTING).state,
    (State.RUNNING, State.RECOVERING, "bad observation"): lambda: _recovering().m.state,
    (State.RECOVERING, State.FAILED, "grace_period passed, still bad"): lambda: _failed().m.state,
    (State.FAILED, State.RUNNING, "first fully good observation"): lambda: _failed().step(after=5, qmgr=R).state,
}
# states the diagram leaves out, and the section of the README (or docs) that describes each
ELSEWHERE = {State.STANDBY: "running / standby", State.STOPPING: "docs/operating.md",
             State.PAUSED: "docs/operating.md", State.WARM: "docs/operating.md",
             State.REPLICA: "docs/native-ha.md", State.REPLICA_BEHIND: "docs/native-ha.md"}


def diagram() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## How it decides"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_every_arrow_drawn_is_what_the_rules_do() -> None:
    wrong = []
    for (src, dst, words), drive in ARROWS.items():
        got = drive()
        if got is not dst:
            wrong.append(f"{src.value} --{words}--> {dst.value}: the machine goes to {got.value}")
    assert not wrong, "\n".join(wrong)


def test_the_diagram_names_real_states_and_the_arrows_words() -> None:
    drawn = diagram()
    named = set(re.findall(r"\b[a-z_]{4,}\b", drawn)) & {s.value for s in State}
    assert named == {s.value for arrow in ARROWS for s in arrow[:2]} | {State.STANDBY.value}, named
    for (_, _, words) in ARROWS:
        assert words in drawn, f"the arrow '{words}' is not in the README diagram"
    assert set(State) == {s for arrow in ARROWS for s in arrow[:2]} | set(ELSEWHERE), "a state nobody draws"
    for state, where in ELSEWHERE.items():
        text = (ROOT / where).read_text(encoding="utf-8") if where.endswith(".md") else drawn + "`standby`"
        assert f"`{state.value}`" in text, (state, where)


def test_a_local_restart_stays_in_recovering_and_a_good_one_ends_it() -> None:
    """The note under `recovering` in the diagram: local strmqm, at most restart_attempts."""
    d = Driver(grace_period=60.0, restart_attempts=1)
    d.up()
    v = d.step(after=1, qmgr=ENDED)
    assert v.state is State.RECOVERING and [a.kind.value for a in v.actions] == ["bring_up"]
    assert d.step(after=1, stage=JobStage.STARTING, result=None).state is State.RECOVERING
    assert d.step(after=1, result=FAILED, qmgr=ENDED).state is State.RECOVERING, "no second attempt, not yet failed"
    assert d.step(after=1, qmgr=R).state is State.RUNNING
