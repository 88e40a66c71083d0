from __future__ import annotations

import pytest

from mqguard.mq.status import Instance, ParseError, QmStatus, find_entry, parse_dspmq

PAD = 58


def line(name: str, status: str) -> str:
    return f"{'QMNAME(' + name + ')':<{PAD}}STATUS({status})"


@pytest.mark.parametrize(
    "word,status",
    [
        ("Running", QmStatus.RUNNING),
        ("RUNNING", QmStatus.RUNNING),
        ("Running as standby", QmStatus.RUNNING_AS_STANDBY),
        ("RUNNING AS STANDBY", QmStatus.RUNNING_AS_STANDBY),
        ("running elsewhere", QmStatus.RUNNING_ELSEWHERE),
        ("Ended pre-emptively", QmStatus.ENDED_PRE_EMPTIVELY),
        ("ENDING PRE-EMPTIVELY", QmStatus.ENDING_PRE_EMPTIVELY),
        ("Ended unexpectedly", QmStatus.ENDED_UNEXPECTEDLY),
        ("Status not available", QmStatus.STATUS_NOT_AVAILABLE),
        ("Starting", QmStatus.STARTING),
        ("RECOVERY GROUP LEADER", QmStatus.RECOVERY_GROUP_LEADER),
    ],
)
def test_status_words_both_forms(word: str, status: QmStatus) -> None:
    assert find_entry(line("QM1", word), "QM1").status is status


def test_instance_lines_with_x() -> None:
    out = "\n".join([line("QM1", "Running"), "    INSTANCE(host1) MODE(Active)", "    INSTANCE(host2) MODE(Standby)"])
    entry = find_entry(out, "QM1")
    assert entry.instances == (Instance("host1", "active"), Instance("host2", "standby"))


def test_several_queue_managers_and_case_sensitive_names() -> None:
    out = "\n".join([line("qm1", "Ended normally"), line("QM1", "Running")])
    assert find_entry(out, "QM1").status is QmStatus.RUNNING
    assert find_entry(out, "qm1").status is QmStatus.ENDED_NORMALLY
    assert len(parse_dspmq(out)) == 2


@pytest.mark.parametrize(
    "garbage",
    [
        "QMNAME(QM1  STATUS(Runn",
        line("QM1", "Sleeping"),
        "QMNAME(QM1)",
        "AMQ7048E: The queue manager name is either not valid or not known.",
        "hello world",
        "    INSTANCE(h) MODE(Active)",
        "",
    ],
)
def test_garbled_output_is_never_running(garbage: str) -> None:
    with pytest.raises(ParseError):
        find_entry(garbage, "QM1")


def test_status_labels_are_lower_case_with_underscores() -> None:
    for status in QmStatus:
        assert status.value == status.value.lower() and " " not in status.value and "-" not in status.value
    assert QmStatus.ENDED_UNEXPECTEDLY.ended and not QmStatus.RUNNING_ELSEWHERE.ended
