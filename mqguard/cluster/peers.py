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


def ask_status(address: str, timeout: float = ASK_TIMEOUT) -> Tuple[Optional[bool], str]:
    """(storage_ok, detail) from a peer's /status; (None, why) when it gives no sane answer."""
    url = f"http://{address}/status"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            body = resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:  # 503 (the peer is unhealthy) still has its status
        body = exc.read(MAX_ANSWER)
    except OSError as exc:
        return None, f"no answer from {address}: {exc}"
    try:
        doc = load_json(body)
    except ValueError:
        return None, f"{address} answers, but not with mqguard's status"
    if not isinstance(doc, dict) or not isinstance(doc.get("storage_ok"), bool):
        return None, f"{address} answers, but not with mqguard's status"
    return bool(doc["storage_ok"]), str(doc.get("storage_detail", ""))[:200]


class PeerStorage:
    def __init__(self, storage_path: str, owners: FrozenSet[int], own_key: Callable[[], str],
                 poll_interval: Callable[[], float], monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 ask: Callable[[str], Tuple[Optional[bool], str]] = ask_status) -> None:
        self.storage_path = storage_path
        self.owners = owners
        self.own_key = own_key
        self.poll_interval = poll_interval
        self.monotonic = monotonic
        self.wall = wall
        self._ask = ask
        self._lock = threading.Lock()
        self._peers: Dict[str, str] = {}  # key -> address
        self._answers: Dict[str, Answer] = {}
        self._read_at: Optional[float] = None
        self._asked_at: Optional[float] = None
        self._busy = False
        self._said = ""

    def tick(self, storage_ok: bool) -> None:
        """From the loop, every cycle; never blocks: reads the records (storage good) or asks the peers (bad)."""
        now = self.monotonic()
        with self._lock:
            if self._busy:
                return
            if storage_ok:
                self._answers.clear()
                # a host that knows no peer yet (its pair just started) looks again soon
                every = REFRESH if self._peers else max(2.0, self.poll_interval())
                if self._read_at is not None and now - self._read_at < every:
                    return
                self._read_at, work = now, self._read
            else:
                if not self._peers or (self._asked_at is not None and now - self._asked_at < self.poll_interval()):
                    return
                self._asked_at, work = now, self._ask_all
            self._busy = True
        threading.Thread(target=self._run, args=(work,), name="peer-storage", daemon=True).start()

    def outage(self) -> str:
        """For the observation while this host's storage is bad (see ``shared_outage``)."""
        with self._lock:
            peers, answers = sorted(self._peers), dict(self._answers)
        said = shared_outage(peers, answers, self.monotonic(), fresh=3 * self.poll_interval() + 2 * ASK_TIMEOUT)
        if said != self._said:
            self._said = said
            if said:
                log.warning("%s: the file system itself is in trouble", said)
        return said

    def peers(self) -> List[str]:
        with self._lock:
            return sorted(self._peers)

    # ------------------------------------------------------------------ off the loop
    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # a nicety: never fatal
            log.debug("peer storage: %s", exc)
        finally:
            with self._lock:
                self._busy = False

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
            ok, detail = self._ask(address)
            results[key] = Answer(key, ok, detail, self.monotonic())

        threads = [threading.Thread(target=one, args=(k, a), daemon=True) for k, a in peers.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ASK_TIMEOUT + 1)
        with self._lock:
            self._answers.update(results)
