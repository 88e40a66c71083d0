"""Native HA (IBM MQ >= 9.4.4 on Linux) in the MQ simulator: three instances of one queue manager, one per
simulated host, each on its own storage, replicating over a real TCP connection between their
``ReplicationAddress`` es, a majority electing the active.

It follows ../shared/reference/mq-native-ha.md ("nha: <section>"); where that page marks a fact unverified the
simulator takes the stricter behaviour and says so here:

- crtmqm ``-lr NAME`` writes ``NativeHALocalInstance: Name=NAME`` and a replicated log (nha: 1, 2); the three
  ``NativeHAInstance`` stanzas are the operator's to add on every host before the first start (nha: 1).
- strmqm refuses a configuration without the local stanza and three instance stanzas (AMQ3205E), with heartbeat
  values out of IBM's ranges, or whose local name is not one of the three (nha: 2, 9); the exit code of those
  refusals is unverified: the simulator's choice is 71. strmqm exits 0 when this instance became the active, 94
  for a replica (nha: 3); whether 0 can come before an election ends is unverified: the simulator waits two
  heartbeat intervals and otherwise exits 94 (a caller must read dspmq to know the role: the stricter).
- Instances exchange heartbeats every ``HeartbeatInterval`` (ms, 500-60000, default 5000) and count a peer gone
  after ``HeartbeatTimeout`` (500-120000, >= the interval, default 2 x) (nha: 9). A peer whose instance stanzas,
  heartbeat settings or queue-manager user differ is rejected with AMQ3209E and never counted (nha: 0, 2).
- The first election needs all three instances, later ones a majority; the best copy of the log (highest LSN)
  wins, ties by instance name (the simulator's rule; IBM documents only "the best copy of data") (nha: 3, 9).
  A replica waits ``HeartbeatTimeout`` before electing after losing the active; an active that ends with
  ``endmqm -s`` warns the others, who elect at once (nha: 6, 9).
- The active writes only while one replica acknowledges (commit needs 2 of 3) and ends when it is connected to
  no other instance for ``QuorumConnectivityTimeout`` (s, default 0) (nha: 6, 9): its processes exit and dspmq
  then says ``Ended unexpectedly`` (what dspmq says is unverified; mqguard must restart it either way).
- A restarted replica reconnects ``INSYNC(no)`` with a ``BACKLOG`` that falls as it catches up (knob
  ``nha.catchup``: KB per second, default unlimited) (nha: 10).
- endmqm: ``-s`` on the active hands over; ``-x`` ends a replica; any end that would leave a running group with
  fewer than two instances is refused (nha: 6). The exit code of that refusal is unverified: the simulator's
  choice is 62, and the instance keeps running; ``-s`` on a replica is refused with 40 (not the active).
- dspmq ``-o status``: ``Running`` (active), ``Replica``, ``Negotiating`` (no active known) (nha: 4).
  ``-o nativeha [-x]`` pins the field set of the reference's 9.4.x capture for the instance lines (``ACKLSN``,
  ``HASTATUS`` instead of ``ALTDATE``/``ALTTIME``) and the documented header without the cross-region ``GRP*``
  fields (no recovery group is configured); ``REPLADDR`` shows the host without the port (nha: 4).

Knobs (files in the control directory): ``nha.catchup`` (KB/s a replica catches up at), ``nha.replay`` (seconds an
elected instance spends in log replay before it opens its listener), ``nha.start_delay`` (seconds strmqm spends
before the instance joins the group: a restart slower than ``HeartbeatTimeout``, as with IBM's defaults of 10 s
and a real start-up; a faster one may find the old active re-elected, its log being as good as any).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import mqsim  # type: ignore[import-not-found]  # the simulator's main module (copied beside this one)

STATE = "nha.json"  # on this instance's own storage: what dspmq and endmqm read
WRITE_KB = 4  # what the active writes per heartbeat interval (simulated load)
REFUSED_QUORUM = 62  # the simulator's choice (the reference: unverified)
CONFIG_ERROR = 71  # the simulator's choice for AMQ3205E and heartbeat values out of range (unverified)
REPLICA_STARTED = 94  # nha: 3 (IBM's container takes it as success)


@dataclass(frozen=True)
class Instance:
    name: str
    host: str
    port: int


@dataclass(frozen=True)
class Config:
    local: str
    instances: Tuple[Instance, ...]
    interval: float  # seconds
    timeout: float
    quorum_timeout: float
    uid: int

    @property
    def me(self) -> Instance:
        return next(i for i in self.instances if i.name == self.local)

    def peers(self) -> List[Instance]:
        return [i for i in self.instances if i.name != self.local]

    def digest(self) -> str:
        """What must agree between the three (nha: 0, 2): the instances, the heartbeat settings, the MQ user."""
        doc = [sorted((i.name, i.host, i.port) for i in self.instances), self.interval, self.timeout, self.uid]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def is_native_ha(dp: str) -> bool:
    return "NativeHALocalInstance" in mqsim.qm_ini(dp)


def _stanzas(dp: str) -> List[Tuple[str, Dict[str, str]]]:
    try:
        with open(os.path.join(dp, "qm.ini")) as fh:
            return [(name, dict(attrs)) for name, attrs in mqsim.parse_ini(fh.read(), "qm.ini")]
    except (OSError, ValueError):
        return []


def load(dp: str) -> Tuple[Optional[Config], str]:
    """The Native HA configuration of qm.ini, or why strmqm refuses it (nha: 2, 9)."""
    stanzas = _stanzas(dp)
    local = [a for n, a in stanzas if n == "NativeHALocalInstance"]
    declared = [a for n, a in stanzas if n == "NativeHAInstance"]
    if not local or not local[0].get("Name"):
        return None, "AMQ3205E: A required stanza of type 'NativeHALocalInstance' was not found in the Native HA " \
                     "configuration data in qm.ini."
    if len(declared) != 3:
        return None, "AMQ3205E: A required stanza of type 'NativeHAInstance' was not found in the Native HA " \
                     f"configuration data in qm.ini ({len(declared)} found, three required)."
    instances = []
    for attrs in declared:
        addr = attrs.get("ReplicationAddress", "")
        host, _, rest = addr.partition("(")
        if not attrs.get("Name") or not rest.endswith(")") or not rest[:-1].isdigit():
            return None, f"AMQ3205E (simulated detail): NativeHAInstance {attrs.get('Name', '?')}: ReplicationAddress " \
                         f"{addr!r} must be host(port), the port in brackets."
        instances.append(Instance(attrs["Name"], host, int(rest[:-1])))
    if len({i.name for i in instances}) != 3:
        return None, "AMQ3205E (simulated detail): the three NativeHAInstance names must differ."
    me = local[0]
    if me["Name"] not in {i.name for i in instances}:
        return None, f"AMQ3205E (simulated detail): the local instance {me['Name']} is not one of the NativeHAInstance " \
                     "stanzas."
    try:
        interval = int(me.get("HeartbeatInterval", "5000"))
        timeout = int(me.get("HeartbeatTimeout", str(2 * interval)))
        quorum_timeout = float(me.get("QuorumConnectivityTimeout", "0"))
    except ValueError:
        return None, "AMQ3205E (simulated detail): heartbeat values must be numbers of milliseconds."
    if not (500 <= interval <= 60000 and 500 <= timeout <= 120000 and timeout >= interval):
        return None, (f"AMQ7?? (simulated): HeartbeatInterval {interval} / HeartbeatTimeout {timeout} out of range "
                      "(500-60000, 500-120000, timeout >= interval).")
    return Config(me["Name"], tuple(instances), interval / 1000, timeout / 1000, quorum_timeout, os.geteuid()), ""


def read_state(dp: str) -> Dict[str, object]:
    return mqsim.read_json(os.path.join(dp, STATE), {})


def running(dp: str) -> Optional[Dict[str, object]]:
    """This host's instance's published state while its controller lives. The state file is replaced many times a
    second; through the FUSE test bed a reader can miss it for a moment (ENOENT, or the old size), which is the
    test bed's, not MQ's: a state that says "not running" is read again (3 times, 10 ms apart) before it counts."""
    for attempt in range(4):
        state = read_state(dp)
        if mqsim.alive(state.get("pid")):
            return state
        if attempt < 3:
            time.sleep(0.01)
    return None


# ------------------------------------------------------------------ the instance (inside amqzxma0)

class Node:
    """One instance: its role, its log position, and what it heard from the other two."""

    def __init__(self, sim: mqsim.Sim, name: str, dp: str, cfg: Config) -> None:
        self.sim, self.name, self.dp, self.cfg = sim, name, dp, cfg
        saved = read_state(dp)
        self.lsn = int(saved.get("lsn", 0) or 0)  # KB of log this instance holds
        self.term = int(saved.get("term", 0) or 0)
        self.elected_once = bool(saved.get("elected_once"))  # the group's first election is behind it (QMId set)
        self.role = "unknown"
        self.insync = False
        self.heard: Dict[str, Dict[str, object]] = {}  # peer -> last message (with "t")
        self.rejected: Dict[str, str] = {}
        self.active_lsn = 0
        self.active_seen = time.monotonic()  # a (re)started instance gives the active a timeout to be heard
        self.handover = False
        self.alone_since: Optional[float] = None
        self.listening = False
        self.controller = mqsim.Controller(sim, name, dp)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def log(self, message: str) -> None:
        self.controller.log(message)

    # -- the network --------------------------------------------------------
    def message(self, handover: bool = False) -> bytes:
        doc = {"from": self.cfg.local, "qmgr": self.name, "cfg": self.cfg.digest(), "role": self.role,
               "lsn": self.lsn, "term": self.term, "insync": self.insync, "handover": handover,
               "behind": max(0, self.active_lsn - self.lsn) if self.role == "replica" else 0,
               "quorum": self.quorum(), "uid": self.cfg.uid}
        return (json.dumps(doc) + "\n").encode()

    def send_all(self, handover: bool = False) -> None:
        data = self.message(handover)
        for peer in self.cfg.peers():
            try:
                with socket.create_connection((peer.host, peer.port), timeout=0.2) as conn:
                    conn.sendall(data)
            except OSError:
                pass  # AMQ3208E on the peer's side is not ours to log; absence shows as a stale heartbeat

    def receive(self, timeout: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.2)
            try:
                raw = conn.recv(65536)
            except OSError:
                return
        try:
            doc = json.loads(raw.decode())
        except ValueError:
            return
        peer = str(doc.get("from"))
        if doc.get("qmgr") != self.name or doc.get("cfg") != self.cfg.digest():
            if self.rejected.get(peer) != doc.get("cfg"):
                self.rejected[peer] = str(doc.get("cfg"))
                what = "QmgrUserId" if doc.get("uid") != self.cfg.uid else "NativeHAInstance"
                self.log(f"AMQ3209E: Native HA connection rejected due to configuration mismatch of '{what}' "
                         f"(from instance '{peer}').")
            return
        self.rejected.pop(peer, None)
        if peer not in self.heard:
            self.log(f"AMQ3213I: Native HA inbound connection accepted from '{peer}'.")
        doc["t"] = time.monotonic()
        self.heard[peer] = doc
        if doc.get("handover"):
            self.handover = True

    def fresh(self) -> Dict[str, Dict[str, object]]:
        now = time.monotonic()
        return {p: d for p, d in self.heard.items() if now - float(d["t"]) <= self.cfg.timeout}  # type: ignore[arg-type]

    def quorum(self) -> int:
        """In-sync instances out of three, as this instance knows (the active's count is definitive)."""
        if self.role == "active":
            return 1 + sum(1 for d in self.fresh().values() if d.get("insync"))
        active = self.known_active()
        return int(active.get("quorum", 0)) if active else 0  # type: ignore[call-overload]

    def known_active(self) -> Optional[Dict[str, object]]:
        # an active that handed over (endmqm -s) is ending: it is followed no more (nha: 6, "one of the replicas
        # becomes the active instance")
        actives = [d for d in self.fresh().values() if d.get("role") == "active" and not d.get("handover")]
        return max(actives, key=lambda d: (int(d["term"]), str(d["from"]))) if actives else None  # type: ignore

    # -- decisions ---------------------------------------------------------
    def tick(self, now: float) -> Optional[str]:
        """One step; returns how the instance ends, if it must."""
        fresh = self.fresh()
        if self.role == "active":
            other = self.known_active()
            if other is not None and (int(other["term"]), str(other["from"])) > (self.term, self.cfg.local):  # type: ignore
                self.log("AMQ3216I (simulated): another instance is the active instance; this one becomes a replica.")
                self.become_replica()
                return None
            if not fresh:
                self.alone_since = self.alone_since or now
                if now - self.alone_since >= self.cfg.quorum_timeout:
                    self.log(f"AMQ3235I: Native HA instance '{self.cfg.local}' is not connected to enough other "
                             "instances to remain the active instance; the queue manager is ending.")
                    return "lost_quorum"
            else:
                self.alone_since = None
            return None
        active = self.known_active()
        if active is not None:
            self.active_seen = now
            if self.role != "replica":
                self.become_replica()
            self.active_lsn = int(active["lsn"])  # type: ignore[call-overload]
            rate = self.sim.knob("nha.catchup")
            step = float(rate) * self.cfg.interval / 4 if rate else float("inf")
            self.lsn = int(min(self.active_lsn, self.lsn + step)) if self.lsn < self.active_lsn else self.active_lsn
            self.insync = self.lsn >= self.active_lsn
            self.handover = False
            return None
        self.role, self.insync = "unknown", False
        if not self.handover and now - self.active_seen < self.cfg.timeout:
            return None  # nha: 9 — wait HeartbeatTimeout before electing, unless the active handed over
        # an instance that handed over (endmqm -s) is ending: it votes for none of its own (nha: 6, "the others
        # are warned"); the simulator's reading: it is no candidate
        voters = {self.cfg.local: self.lsn, **{p: int(d["lsn"]) for p, d in fresh.items()  # type: ignore[misc]
                                               if not d.get("handover")}}
        if len(voters) < (3 if not self.elected_once else 2):
            return None  # the first election needs all three, later ones a majority (nha: 3)
        winner = max(voters, key=lambda n: (voters[n], [-ord(c) for c in n]))
        if winner == self.cfg.local:
            self.become_active(fresh)
        return None

    def become_replica(self) -> None:
        self.role, self.elected_once = "replica", True
        if self.listening:
            self.controller.close()
            self.listening = False
        mqsim.update_state(self.dp, status="replica", host=self.sim.host, pid=os.getpid())

    def become_active(self, fresh: Dict[str, Dict[str, object]]) -> None:
        self.term = max([self.term] + [int(d["term"]) for d in fresh.values()]) + 1  # type: ignore[call-overload]
        self.role, self.insync, self.elected_once, self.handover = "active", True, True, False
        self.publish()
        self.send_all()
        end_at = time.time() + float(self.sim.knob("nha.replay") or 0)  # normal queue manager startup (nha: 9)
        while time.time() < end_at:
            self.receive(0.05)
        self.controller.start_qmgr_listeners()
        self.listening = True
        mqsim.update_state(self.dp, status="running", host=self.sim.host, pid=os.getpid(), level=self.sim.version)
        self.log(f"AMQ3215I: The local Native HA instance '{self.cfg.local}' is now the active instance of queue "
                 f"manager '{self.name}'.")

    def publish(self) -> None:
        now = time.monotonic()
        peers = {}
        for inst in self.cfg.peers():
            d = self.heard.get(inst.name)
            # a peer that said it is ending (endmqm -s warns the others, nha: 6) counts as gone at once
            connected = d is not None and now - float(d["t"]) <= self.cfg.timeout and not d.get("handover")  # type: ignore[arg-type]
            peers[inst.name] = {
                "role": str(d.get("role")) if connected and d else "unknown",
                "connected": connected, "insync": bool(connected and d and d.get("insync")),
                "lsn": int(d.get("lsn", 0)) if d else 0,  # type: ignore[call-overload]
                "behind": int(d.get("behind", 0)) if d else 0,  # type: ignore[call-overload]
            }
        mqsim.write_json(os.path.join(self.dp, STATE), {
            "pid": os.getpid(), "instance": self.cfg.local, "role": self.role, "lsn": self.lsn, "term": self.term,
            "insync": self.insync, "quorum": self.quorum(), "elected_once": self.elected_once,
            "active_lsn": self.lsn if self.role == "active" else self.active_lsn, "peers": peers})

    def serve(self) -> int:
        me = self.cfg.me
        try:
            self.sock.bind((me.host, me.port))
        except OSError as exc:
            self.log(f"AMQ3208E: Native HA network connection to '{me.host}({me.port})' could not be established "
                     f"({exc.strerror}).")
            return 71
        self.sock.listen(16)
        mqsim.update_state(self.dp, status="negotiating", host=self.sim.host, pid=os.getpid(), since=time.time())
        self.controller.spawn_children()
        next_beat = 0.0
        ending = ""
        while not ending:
            now = time.monotonic()
            if now >= next_beat:
                if self.role == "active" and self.fresh():
                    self.lsn += WRITE_KB  # writes commit only with a replica's acknowledgement (2 of 3)
                self.send_all()
                next_beat = now + self.cfg.interval
            self.receive(min(0.05, self.cfg.interval / 4))
            how = self.tick(time.monotonic())
            self.publish()
            if how:
                ending = how
                break
            req = mqsim.take_request(self.dp, "end")
            if req is not None:
                if req.get("mode") == "handover":
                    self.send_all(handover=True)  # nha: 6 — the others are warned and elect at once
                ending = "ended_immediately" if req.get("mode") == "i" else "ended_normally"
        self.controller.close()
        self.controller.end_children()
        self.sock.close()
        self.role, self.insync = "unknown", False
        state = read_state(self.dp)
        state.update(pid=None, role="unknown", insync=False, lsn=self.lsn, term=self.term)
        mqsim.write_json(os.path.join(self.dp, STATE), state)
        if ending == "lost_quorum":
            return 1  # its processes end; the queue manager status is left live: dspmq says ended unexpectedly
        mqsim.update_state(self.dp, status=ending, host=self.sim.host, pid=None)
        self.log(f"AMQ8004I: IBM MQ queue manager '{self.name}' ended.")
        return 0


def controller(sim: mqsim.Sim, name: str, dp: str) -> int:
    cfg, _ = load(dp)
    if cfg is None:
        return CONFIG_ERROR
    return Node(sim, name, dp, cfg).serve()


# ------------------------------------------------------------------ commands

def strmqm(sim: mqsim.Sim, name: str, dp: str) -> int:
    qm_errors = os.path.join(dp, "errors")
    cfg, why = load(dp)
    if cfg is None:
        return mqsim.fail(sim, "strmqm", CONFIG_ERROR, why, qmgr=name, qm_errors=qm_errors)
    if running(dp) is not None:
        mqsim.out("IBM MQ queue manager running.")
        return 5
    leftovers = mqsim.qm_processes(sim, name)
    if leftovers:
        return mqsim.fail(sim, "strmqm", 24, "AMQ8041S: The queue manager cannot be restarted or deleted because "
                                             "processes, that were previously connected, are still running.",
                          qmgr=name, qm_errors=qm_errors)
    mqsim.out(f"IBM MQ queue manager '{name}' starting.",
              "The queue manager is associated with installation 'Installation1'.")
    time.sleep(float(sim.knob("nha.start_delay") or 0))  # the instance's own start-up, before it joins the group
    proc = mqsim._spawn_controller(sim, name, multi=False)
    deadline = time.time() + max(10.0, 2 * cfg.interval + 5)
    decided = time.time() + 2 * cfg.interval
    while time.time() < deadline:
        state = running(dp)
        if proc.poll() is not None:
            return mqsim.fail(sim, "strmqm", 71, "AMQ6109E: An internal IBM MQ error has occurred (the Native HA "
                                                 "instance could not start; see AMQERR01.LOG).", qmgr=name,
                              qm_errors=qm_errors)
        if state is not None and mqsim.Sim.read_state(dp).get("status") == "running":
            proc.returncode = 0
            mqsim.out("Plain text communication is enabled.",
                      f"IBM MQ queue manager '{name}' started using V{sim.version}.")
            return 0
        if state is not None and time.time() >= decided:
            proc.returncode = 0
            mqsim.out(f"Native HA replica of queue manager '{name}' started (simulated text: instance "
                      f"'{cfg.local}').")
            return REPLICA_STARTED
        time.sleep(0.05)
    proc.returncode = 0
    return REPLICA_STARTED


def status_key(dp: str) -> Optional[str]:
    """dspmq -o status for a Native HA queue manager on this host: running, replica, negotiating (None: not
    running; the ordinary ended statuses apply)."""
    state = running(dp)
    if state is None:
        return None
    return {"active": "running", "replica": "replica"}.get(str(state.get("role")), "negotiating")


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def nativeha_lines(name: str, dp: str, show_x: bool) -> List[str]:
    """dspmq -o nativeha [-x] (nha: 4; the 9.4.x instance fields, see the module's docstring)."""
    cfg, _ = load(dp)
    state = running(dp) or {}
    local = cfg.local if cfg else str(state.get("instance", "?"))
    role = {"active": "Active", "replica": "Replica"}.get(str(state.get("role")), "Unknown")
    lines = [f"{'QMNAME(' + name + ')':<29}ROLE({role}) INSTANCE({local}) INSYNC({_yes(state.get('insync'))}) "
             f"QUORUM({int(state.get('quorum', 0) or 0)}/3)"]  # type: ignore[call-overload]
    if not show_x or cfg is None:
        return lines
    peers = state.get("peers") if isinstance(state.get("peers"), dict) else {}
    me = {"role": state.get("role", "unknown"), "connected": bool(state), "insync": state.get("insync"),
          "lsn": state.get("lsn", 0)}
    for inst in [cfg.me] + cfg.peers():
        d = me if inst.name == cfg.local else peers.get(inst.name, {})  # type: ignore[union-attr]
        if not state:
            lines.append(f" INSTANCE({inst.name}) ROLE(Unknown) REPLADDR({inst.host}) CONNACTV(Unknown) "
                         "INSYNC(Unknown) BACKLOG(Unknown) CONNINST(no) ACKLSN() HASTATUS()")
            continue
        r = {"active": "Active", "replica": "Replica"}.get(str(d.get("role")), "Unknown")
        lsn = int(d.get("lsn", 0) or 0)
        # KB the active wrote that this instance has not acknowledged, as its last acknowledgement said
        backlog = int(d.get("behind", 0) or 0) if role == "Active" and d.get("connected") else None
        lines.append(
            f" INSTANCE({inst.name}) ROLE({r}) REPLADDR({inst.host}) "
            f"CONNACTV({_yes(d.get('connected')) if role != 'Unknown' else 'Unknown'}) "
            f"INSYNC({_yes(d.get('insync'))}) BACKLOG({backlog if backlog is not None else 'Unknown'}) "
            f"CONNINST({_yes(d.get('connected'))}) ACKLSN(<0:0:{lsn // 65536}:{lsn % 65536}>) "
            f"HASTATUS({'Normal' if d.get('insync') or r == 'Active' else 'Synchronizing'})")
    return lines


def endmqm(sim: mqsim.Sim, name: str, dp: str, flags: List[str]) -> int:
    """nha: 6 — -s hands over from the active, -x ends a replica; an end that breaks quorum is refused."""
    state = running(dp)
    if state is None:
        mqsim.err("AMQ8146E: IBM MQ queue manager not available.")
        return 40
    role = str(state.get("role"))
    peers = state.get("peers") if isinstance(state.get("peers"), dict) else {}
    up = 1 + sum(1 for d in peers.values() if d.get("connected"))  # type: ignore[union-attr]
    if "-s" in flags and role != "active":
        mqsim.err(f"AMQ7?? (simulated): this instance of queue manager '{name}' is not the active instance; "
                  "endmqm -s is for the active instance.")
        return 40
    if "-x" in flags and role == "active":
        mqsim.err(f"AMQ7?? (simulated): this instance of queue manager '{name}' is the active instance; use -s.")
        return 40
    if up == 2:  # ending this one would leave a single instance: the group's quorum breaks (nha: 6)
        mqsim.err(f"AMQ7?? (simulated): ending this instance of queue manager '{name}' would break the Native HA "
                  "group's quorum; the request is refused.")
        return REFUSED_QUORUM
    if "-s" in flags and not any(d.get("insync") for d in peers.values()):  # type: ignore[union-attr]
        mqsim.err(f"AMQ7?? (simulated): no replica of queue manager '{name}' is in sync to take over.")
        return REFUSED_QUORUM
    pid = int(state["pid"])  # type: ignore[call-overload]
    mode = "handover" if "-s" in flags else ("i" if ("-i" in flags or "-p" in flags) else "c")
    mqsim.request(dp, "end", pid, mode=mode)
    mqsim.out(f"IBM MQ queue manager '{name}' ending.")
    if not mqsim.wait_gone(pid, 60):
        return 40
    mqsim.out(f"IBM MQ queue manager '{name}' ended.")
    return 0
