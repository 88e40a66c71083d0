"""dspmq -o nativeha parsed: IBM's documented lines, a real 9.3.1 capture and the 9.4.x field set (the
reference, mq-native-ha.md section 4), and bad input refused."""

from __future__ import annotations

import pytest

from mqguard.mq.nativeha import parse_nativeha
from mqguard.mq.status import ParseError

# IBM's documented header lines (9.2 "Viewing the status of Native HA queue managers"), one per instance's view
DOC_ACTIVE = "QMNAME(BOB)                  ROLE(Active) INSTANCE(inst1) INSYNC(Yes) QUORUM(3/3)"
DOC_REPLICA = "QMNAME(BOB)                  ROLE(Replica) INSTANCE(inst2) INSYNC(Yes) QUORUM(2/3)"
DOC_INACTIVE = "QMNAME(BOB)                  ROLE(Unknown) INSTANCE(inst3) INSYNC(no) QUORUM(0/3)"
# a real 9.3.1 `dspmq -x -o nativeha` as posted in ibm-messaging/mq-helm#35 (header reduced to the nativeha fields)
REAL_931 = """\
QMNAME(ibmmq)                                             ROLE(Active) INSTANCE(ibm-mq-1) INSYNC(yes) QUORUM(3/3)
 INSTANCE(ibm-mq-1) ROLE(Active) REPLADDR(ibm-mq-replica-1) CONNACTV(yes) INSYNC(yes) BACKLOG(0) CONNINST(yes) ALTDATE(2023-02-16) ALTTIME(22.23.35)
 INSTANCE(ibm-mq-2) ROLE(Replica) REPLADDR(ibm-mq-replica-2) CONNACTV(yes) INSYNC(yes) BACKLOG(0) CONNINST(yes) ALTDATE(2023-02-16) ALTTIME(22.23.35)
"""
# IBM's example of a lagging replica, and the view from a dead instance (every peer Unknown)
LAGGING = (" INSTANCE(inst2) ROLE(Replica) REPLADDR(9.20.123.46) CONNACTV(Yes) INSYNC(No) BACKLOG(435) CONNINST(Yes) "
           "ALTDATE(2021-01-12) ALTTIME(12.03.44)")
UNKNOWN = (" INSTANCE(inst1) ROLE(Unknown) REPLADDR(9.20.123.45) CONNACTV(Unknown) INSYNC(Unknown) BACKLOG(Unknown) "
           "CONNINST(No) ALTDATE() ALTTIME()")
# the 9.4.x field set (third-party capture, spacing may differ): ACKLSN/HASTATUS instead of ALTDATE/ALTTIME
V94 = ("QMNAME(QM1)                  ROLE(Active) INSTANCE(a) INSYNC(yes) QUORUM(3/3) GRPLSN(<0:0:17:6826>) "
       "GRPNAME(HA-GROUP-1) GRPROLE(Live)\n"
       " INSTANCE(a) ROLE(Active) REPLADDR(10.0.1.10) CONNACTV(yes) INSYNC(yes) BACKLOG(0) CONNINST(yes) "
       "ACKLSN(<0:0:17:6826>) HASTATUS(Normal)\n")


def test_ibms_documented_views_of_each_role() -> None:
    a = parse_nativeha(DOC_ACTIVE, "BOB")
    assert (a.role, a.instance, a.insync, a.quorum) == ("active", "inst1", True, (3, 3))
    r = parse_nativeha(DOC_REPLICA, "BOB")
    assert (r.role, r.insync, r.quorum) == ("replica", True, (2, 3))
    u = parse_nativeha(DOC_INACTIVE, "BOB")
    assert (u.role, u.insync, u.quorum) == ("unknown", False, (0, 3))


def test_a_real_931_capture_and_the_94_field_set() -> None:
    s = parse_nativeha(REAL_931, "ibmmq")
    assert s.role == "active" and s.quorum == (3, 3) and s.backlog_kb == 0
    assert [(i.name, i.role, i.connected, i.insync) for i in s.instances] == [
        ("ibm-mq-1", "active", True, True), ("ibm-mq-2", "replica", True, True)]
    v = parse_nativeha(V94, "QM1")
    assert v.role == "active" and v.instances[0].address == "10.0.1.10"


def test_a_lagging_replica_and_unknown_values() -> None:
    s = parse_nativeha(DOC_ACTIVE + "\n" + LAGGING + "\n" + UNKNOWN, "BOB")
    lag, dead = s.instances
    assert (lag.insync, lag.backlog_kb, lag.connected) == (False, 435, True)
    assert (dead.role, dead.insync, dead.backlog_kb, dead.connected) == ("unknown", None, None, None), \
        "Unknown is not known, never yes"


@pytest.mark.parametrize("bad", [
    "",  # nothing
    "QMNAME(BOB) ROLE(Active) INSTANCE(inst1) INSYNC(Yes)",  # no QUORUM
    "QMNAME(BOB) ROLE(Boss) INSTANCE(inst1) INSYNC(Yes) QUORUM(3/3)",  # unknown role
    "QMNAME(BOB) ROLE(Active) INSTANCE(inst1) INSYNC(maybe) QUORUM(3/3)",
    "QMNAME(BOB) ROLE(Active) INSTANCE(inst1) INSYNC(Yes) QUORUM(4/3)",  # impossible
    "QMNAME(BOB) ROLE(Active) INSTANCE(inst1) INSYNC(Yes) QUORUM(3)",
    "AMQ8146E: IBM MQ queue manager not available.",
    " INSTANCE(inst2) ROLE(Replica) BACKLOG(1)",  # an instance line first
    DOC_ACTIVE + "\n INSTANCE(x) ROLE(Replica) BACKLOG(-5)",
    "QMNAME(BOB)  STATUS(Running)",  # the status form, not nativeha
])
def test_bad_input_is_an_error_never_an_in_sync_active(bad: str) -> None:
    with pytest.raises(ParseError):
        parse_nativeha(bad, "BOB")


def test_another_queue_managers_line_is_not_ours() -> None:
    with pytest.raises(ParseError):
        parse_nativeha(DOC_ACTIVE.replace("BOB", "ALICE"), "BOB")
