"""What the other hosts of this queue manager say of the storage, asked when this host's is bad.

When EFS itself is in trouble every host sees it at once, and reporting would only have every instance replaced:
each new one meets the same file system, and a queue manager on a hard NFS mount, blocked meanwhile, goes on by
itself when EFS answers again. So while this host's storage is bad, mqguard asks the other hosts' mqguard
(``GET /status`` on the address each one keeps in its record, ``mqguard list``'s records) whether theirs is bad
too. Only when every known peer answers, and every one says its storage is bad, is the trouble the file
system's; a peer that does not answer, or whose storage is good, leaves the decision as it always was (the
trouble is this host's: report after the grace period).

The peers' addresses are read from the records while the storage is good (during an EFS outage the records
cannot be read: the last list holds). Everything here runs off the loop, bounded: 2 s per question, at most
``MAX_PEERS`` peers, answers of at most 1 MiB.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from mqguard.base.untrusted import load_json, loggable
from mqguard.cluster import view
from mqguard.cluster.reader import read_hosts
from mqguard.history.events import parse_iso

log = logging.getLogger(__name__)

MAX_PEERS = 8
ASK_TIMEOUT = 2.0
REFRESH = 30.0  # seconds between reads of the records while the storage is good
MAX_ANSWER = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    peer: str  # its key (instance id or host)
    storage_ok: Optional[bool]  # None: no (sane) answer
    detail: str
    at: float  # monotonic
    checked: Optional[float] = None  # monotonic moment the peer last saw its storage good (None: it did not say)


def shared_outage(peers: Sequence[str], answers: Dict[str, Answer], now: float, fresh: float) -> str:
    """Pure: "storage bad on every host: ..." when every known peer answered within ``fresh`` seconds that its
    storage is bad; "" otherwise (no peer known, one silent, one good, an answer too old)."""
    if not peers:
        return ""
    said = []
    for peer in peers:
        a = answers.get(peer)
        if a is None or a.storage_ok is not False or now - a.at > fresh:
            return ""
        said.append(f"{peer} ({loggable(a.detail, 60)})")
    return "storage bad on every host: " + ", ".join(said)


def judge(peers: Sequence[str], answers: Dict[str, Answer], now: float, fresh: float,
          bad_since: Optional[float], hold: float, settle: float = 0.0) -> Tuple[str, str]:
    """Pure: (outage, waiting). ``outage`` as ``shared_outage``. ``waiting`` names the peers not heard from yet
    while that can still change the decision: no peer has said its storage is good, and this host's storage went
    bad less than ``hold`` seconds ago. A loaded machine may answer after the grace period; without the wait the
    host would report an outage that is the file system's (seen in `make test`). A "good" given less than
    ``settle`` seconds after this host's storage went bad is not yet an answer: the peer's own probe of the same
    frozen file system may not have run out yet (seen too)."""
    outage = shared_outage(peers, answers, now, fresh)
    if outage or not peers or bad_since is None or now - bad_since >= hold:
        return outage, ""
    unheard = []
    for peer in peers:
        a = answers.get(peer)
        known = a is not None and a.storage_ok is not None and now - a.at <= fresh
        # a peer's storage seen good after ours went bad: the trouble is this host's. A peer that says when it
        # last saw its storage good is believed on that; one that does not, once it had time to notice (settle)
        believed = a is not None and (a.checked >= bad_since if a.checked is not None else a.at - bad_since >= settle)
        if known and a is not None and a.storage_ok and believed:
            return "", ""
        if not known or (a is not None and a.storage_ok):
            unheard.append(peer)
    return "", ("asking " + ", ".join(unheard) + " whether its storage is bad too") if unheard else ""


class Reply(Tuple[Optional[bool], str]):
    """A peer's answer: (storage_ok, detail), and ``checked``, the wall-clock moment its storage was last seen
    good when it said so (a tuple, so that a plain (ok, detail) stands for an answer that does not say)."""

    checked: Optional[float]

    def __new__(cls, ok: Optional[bool], detail: str, checked: Optional[float] = None) -> Reply:
        reply = super().__new__(cls, (ok, detail))
        reply.checked = checked
        return reply


def ask_status(address: str, timeout: float = ASK_TIMEOUT, stale_after: Optional[float] = None,
               wall: Callable[[], float] = time.time) -> Reply:
    """(storage_ok, detail) from a peer's /status; (None, why) when it gives no sane answer. /status is the
    peer's last finished cycle: a "good" from a cycle older than ``stale_after`` seconds (the peer's loop hangs,
    e.g. in dspmq on the same frozen EFS) may predate the trouble, and is no answer."""
    url = f"http://{address}/status"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            body = resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:  # 503 (the peer is unhealthy) still has its status
        body = exc.read(MAX_ANSWER)
    except OSError as exc:
        return Reply(None, f"no answer from {address}: {exc}")
    try:
        doc = load_json(body)
    except ValueError:
        return Reply(None, f"{address} answers, but not with mqguard's status")
    if not isinstance(doc, dict) or not isinstance(doc.get("storage_ok"), bool):
        return Reply(None, f"{address} answers, but not with mqguard's status")
    ok, detail = bool(doc["storage_ok"]), str(doc.get("storage_detail", ""))[:200]
    checked = parse_iso(str(doc.get("storage_checked", "")))
    if ok and checked is not None:  # when its storage was last seen good: judged against our trouble's start
        return Reply(ok, detail, checked)
    last = parse_iso(str(doc.get("last_cycle", ""))) if stale_after is not None else None
    if ok and stale_after is not None and (last is None or wall() - last > stale_after):
        age = "unknown" if last is None else f"{wall() - last:.1f}s old"
        return Reply(None, f"{address} says good, but its last finished cycle is {age}: it may predate the trouble")
    return Reply(ok, detail)


class PeerStorage:
    def __init__(self, storage_path: str, owners: FrozenSet[int], own_key: Callable[[], str],
                 poll_interval: Callable[[], float], monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 ask: Optional[Callable[[str], Tuple[Optional[bool], str]]] = None,
                 probe_timeout: Callable[[], float] = lambda: 0.0) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.own_key = own_key
        self.poll_interval = poll_interval
        self.monotonic = monotonic
        self.wall = wall
        # the peer's cycle must be recent for its "good" to count: two of our polls and a margin
        self._ask = ask or (lambda address: ask_status(address, stale_after=2 * self.poll_interval() + 1.0,
                                                       wall=self.wall))
        self.probe_timeout = probe_timeout  # [storage] probe_timeout: how long a peer takes to see a freeze
        self._lock = threading.Lock()
        self._peers: Dict[str, str] = {}  # key -> address
        self._answers: Dict[str, Answer] = {}
        self._read_at: Optional[float] = None
        self._asked_at: Optional[float] = None
        self._reading = False  # a read of the records is under way (it may hang while EFS is frozen)
        self._asking = False  # the peers are being asked
        self._said = ""
        self._bad_since: Optional[float] = None

    def tick(self, storage_ok: bool) -> None:
        """From the loop, every cycle; never blocks: reads the records (storage good) or asks the peers (bad).
        A read and an ask never wait for each other: a read that EFS froze under hangs until EFS answers, and
        asking the peers, which touches no storage, is what is needed meanwhile."""
        now = self.monotonic()
        with self._lock:
            if storage_ok:
                self._answers.clear()
                self._bad_since = None
                # a host that knows no peer yet (its pair just started) looks again soon
                every = REFRESH if self._peers else max(2.0, self.poll_interval())
                if self._reading or (self._read_at is not None and now - self._read_at < every):
                    return
                self._read_at, self._reading, work, done = now, True, self._read, "reading"
            else:
                if self._bad_since is None:
                    self._bad_since = now
                if self._asking or not self._peers or (
                        self._asked_at is not None and now - self._asked_at < self.poll_interval()):
                    return
                self._asked_at, self._asking, work, done = now, True, self._ask_all, "asking"
        threading.Thread(target=self._run, args=(work, done), name=f"peer-storage-{done}", daemon=True).start()

    def settle(self) -> float:
        """How long after this host's storage went bad a peer's "good" is believed: its own probe (the same
        probe_timeout as ours) and two polls to notice the same trouble."""
        return self.probe_timeout() + 2 * self.poll_interval()

    def hold(self) -> float:
        """How long an answer counts, and how long a report waits for one: the settling time, then three asks
        and their timeouts."""
        return self.settle() + 3 * self.poll_interval() + 3 * ASK_TIMEOUT + 2

    def verdict(self) -> Tuple[str, str]:
        """For the observation while this host's storage is bad: (outage, waiting), see ``judge``."""
        with self._lock:
            peers, answers, bad_since = sorted(self._peers), dict(self._answers), self._bad_since
        hold = self.hold()
        said, waiting = judge(peers, answers, self.monotonic(), fresh=hold, bad_since=bad_since, hold=hold,
                              settle=self.settle())
        if said != self._said:
            self._said = said
            if said:
                log.warning("%s: the file system itself is in trouble", said)
        return said, waiting

    def peers(self) -> List[str]:
        with self._lock:
            return sorted(self._peers)

    # ------------------------------------------------------------------ off the loop
    def _run(self, work: Callable[[], None], flag: str) -> None:
        try:
            work()
        except Exception as exc:  # a nicety: never fatal
            log.debug("peer storage: %s", exc)
        finally:
            with self._lock:
                if flag == "reading":
                    self._reading = False
                else:
                    self._asking = False

    def _read(self) -> None:
        now = self.wall()
        hosts = read_hosts(self.storage_path, self.owners, now)
        mine = self.own_key()
        after = view.stale_after(self.poll_interval())
        found = {r.key: r.address for r in hosts.records
                 if r.key != mine and r.address and not view.is_stale(r, now, after)}
        if len(found) > MAX_PEERS:
            found = dict(sorted(found.items())[:MAX_PEERS])
        with self._lock:
            if found != self._peers:
                log.info("peers of this queue manager: %s", ", ".join(f"{k} ({a})" for k, a in sorted(found.items()))
                         or "none")
            self._peers = found

    def _ask_all(self) -> None:
        with self._lock:
            peers = dict(self._peers)
        results: Dict[str, Answer] = {}

        def one(key: str, address: str) -> None:
            reply = self._ask(address)
            ok, detail = reply
            wall_checked = getattr(reply, "checked", None)  # when its storage was last seen good, if it says
            checked = None if wall_checked is None else wall_checked - (self.wall() - self.monotonic())
            results[key] = Answer(key, ok, detail, self.monotonic(), checked)

        threads = [threading.Thread(target=one, args=(k, a), daemon=True) for k, a in peers.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ASK_TIMEOUT + 1)
        with self._lock:
            for key, answer in results.items():
                before = self._answers.get(key)
                # "no answer" (a timeout on a loaded machine) does not erase what the peer said a moment ago
                if answer.storage_ok is not None or before is None or before.storage_ok is None:
                    self._answers[key] = answer
