"""/metrics, /healthz, /status, /active and /standby on ``metrics.listen``: one bounded event loop.

Handlers only read the last snapshot (and the metrics registry, which reads
snapshots too): no MQ command, no EFS access, so they answer in milliseconds
even while EFS hangs.

The port may be reachable by clients that are not friendly. Nothing a client
does may make mqguard unhealthy or report the instance, so the endpoint is one
thread with a selector and fixed bounds: at most ``max_connections`` open (when
full, the connection whose last request is oldest makes room, idle or with an
answer it never reads, so a crowd of idle, dripping or pipelining clients cannot
lock a load balancer out; evictions counted), request headers of at most ``MAX_HEADER``
bytes (else 431), a deadline for a request's headers and an idle limit between
keep-alive requests, GET and HEAD only, and no request body. ``/metrics`` is
rendered at most once per ``METRICS_TTL`` and shared by every scraper, so a
crowd of scrapers costs writes, not collections. The file descriptors it can
hold are at most a quarter of mqguard's own limit, so a flood of clients never
leaves the supervision loop without descriptors for its probe and commands.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from mqguard.base.untrusted import loggable
from mqguard.supervisor.model import State
from mqguard.supervisor.snapshot import Snapshot

log = logging.getLogger(__name__)

SnapshotSource = Callable[[], Optional[Snapshot]]

MAX_CONNECTIONS = 256
FD_SHARE = 4  # the endpoint holds at most 1/FD_SHARE of mqguard's descriptor limit
MAX_HEADER = 8192  # bytes of request line + headers
HEADER_TIMEOUT = 5.0  # a request's headers must arrive within this
IDLE_TIMEOUT = 30.0  # a keep-alive connection may wait this long for its next request
WRITE_TIMEOUT = 10.0  # a client that does not read its answer is dropped
METRICS_TTL = 1.0  # /metrics is rendered at most this often
BACKLOG = 1024  # a crowd reconnecting faster than the loop accepts must not drop a check's SYN (retried after 1 s)
PATHS = ["/metrics", "/healthz", "/status", "/active", "/standby"]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


# Before the first snapshot: the machine's first state, as the metrics say it (not a state of its own)
NO_SNAPSHOT_STATE = State.WAITING_FOR_STORAGE.value


def health_verdict(snap: Optional[Snapshot], stale_after: float, now: float) -> Tuple[bool, Dict[str, Any]]:
    """(healthy?, JSON body) for /healthz. A stalled loop is not healthy, whatever it said last. ``now`` is
    monotonic: a step of the wall clock (NTP, a VM resumed) neither stalls nor revives the loop."""
    if snap is None:
        return False, {"healthy": False, "state": NO_SNAPSHOT_STATE, "reasons": ["no cycle completed yet"]}
    reasons = list(snap.bad_reasons)
    healthy = snap.healthy
    if snap.cycle_at is not None and now - snap.cycle_at > stale_after:
        healthy = False
        reasons.append(f"supervision loop stalled: last cycle {now - snap.cycle_at:.0f}s ago")
    if not healthy and not reasons:
        reasons.append(snap.state)
    return healthy, {
        "healthy": healthy, "state": snap.state, "qmgr": snap.qmgr, "qmgr_status": snap.qmgr_status,
        "reasons": reasons,
    }


def role_verdict(snap: Optional[Snapshot], role: str, stale_after: float, now: float) -> Tuple[bool, Dict[str, Any]]:
    """(serve clients here?, JSON body) for /active and /standby: what a load balancer's target group asks."""
    if snap is None:
        return False, {role: False, "state": NO_SNAPSHOT_STATE, "reason": "no cycle completed yet"}
    fresh = snap.cycle_at is not None and now - snap.cycle_at <= stale_after
    yes = fresh and (snap.active if role == "active" else snap.standby)
    doc: Dict[str, Any] = {role: yes, "state": snap.state, "qmgr": snap.qmgr, "qmgr_status": snap.qmgr_status}
    if not fresh:
        doc["reason"] = "supervision loop stalled"
    return yes, doc


def connection_cap() -> int:
    """A quarter of the soft descriptor limit (at least 4): the rest stays for supervision."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, soft // FD_SHARE)


class _Conn:
    __slots__ = ("close_after", "deadline", "inbuf", "last_request", "outbuf", "peer", "served", "sock")

    def __init__(self, sock: socket.socket, peer: str, now: float) -> None:
        self.sock = sock
        self.last_request = now  # when it last completed a request (or connected)
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.deadline = now + HEADER_TIMEOUT
        self.close_after = False
        self.served = 0  # requests answered on this connection


class HttpEndpoint:
    def __init__(self, host: str, port: int, snapshot: SnapshotSource, registry: CollectorRegistry,
                 stale_after: float | Callable[[], float], monotonic: Callable[[], float] = time.monotonic,
                 max_connections: int = MAX_CONNECTIONS, count: Callable[[str], None] = lambda result: None) -> None:
        self.snapshot = snapshot
        self.count = count  # evicted / refused, for mqguard_http_connections_total
        self.registry = registry
        # a callable follows a reloaded poll_interval
        self._stale_after = stale_after if callable(stale_after) else (lambda: float(stale_after))
        self.monotonic = monotonic  # staleness is judged on the monotonic clock, as the snapshot's cycle_at
        self.max_connections = min(max_connections, connection_cap())
        self.refused = 0  # new connections closed at once: the cap was reached and every connection was busy
        self.evicted = 0  # idle connections closed to make room for a new one
        self._metrics_cache: Dict[str, Tuple[float, bytes]] = {}  # content type -> (rendered at, body)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(BACKLOG)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._conns: Dict[int, _Conn] = {}
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._accept_paused_until = 0.0
        self._pressure_said = -60.0
        self.thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self._conns)

    def start(self) -> None:
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        self.thread = threading.Thread(target=self._loop, name="http", daemon=True)
        self.thread.start()
        log.info("serving /metrics, /healthz and /status on %s:%d (at most %d connections)",
                 self.sock.getsockname()[0], self.port, self.max_connections)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        if self.thread is not None:
            self.thread.join(5)
        for conn in list(self._conns.values()):
            self._close(conn)
        self._sel.close()
        self.sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    # ----------------------------------------------------------------- loop
    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            if self._accept_paused_until and now >= self._accept_paused_until:
                self._accept_paused_until = 0.0
                self._sel.register(self.sock, selectors.EVENT_READ, None)
            for key, events in self._sel.select(timeout=0.5):
                if key.data == "stop":
                    return
                if key.data is None:
                    self._accept()
                    continue
                conn: _Conn = key.data
                try:
                    if events & selectors.EVENT_READ:
                        self._read(conn)
                    if events & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                        self._write(conn)
                except OSError:
                    self._close(conn)
                except Exception:  # a bug here must not end the endpoint
                    log.exception("http: unexpected error serving %s", conn.peer)
                    self._close(conn)
            self._sweep(time.monotonic())

    def _accept(self) -> None:
        for _ in range(64):  # bounded: other connections get their turn
            try:
                sock, addr = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors: stop accepting for a moment rather than spin
                    log.warning("http: cannot accept connections (%s); pausing for 1s", exc.strerror)
                    self._accept_paused_until = time.monotonic() + 1.0
                    self._sel.unregister(self.sock)
                return
            if len(self._conns) >= self.max_connections and not self._make_room():
                self.refused += 1
                self.count("refused")
                self._say_pressure()
                sock.close()  # refused at once, never queued behind the others
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, str(addr[0]), time.monotonic())
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _make_room(self) -> bool:
        """Close one connection for a newcomer, in this order: one that does not read its answers (an answer in
        flight: a crowd that pipelines and never reads), then one already served and idle, then one whose first
        request has not arrived; the oldest of its kind. A load balancer's fresh check is in the last kind, and
        the youngest there: under load its request may be read well after it connected, and it must outlive
        the crowd (closing by age alone evicted it as soon as the cap's worth of newcomers had arrived)."""
        if not self._conns:
            return False
        self._close(min(self._conns.values(), key=_eviction_order))
        self.evicted += 1
        self.count("evicted")
        self._say_pressure()
        return True

    def _say_pressure(self) -> None:
        now = time.monotonic()
        if now - self._pressure_said >= 60.0:  # rate-limited: a flood must not flood the log too
            self._pressure_said = now
            log.warning("http: at the connection cap (%d): %d connections evicted and %d refused so far "
                        "(mqguard_http_connections_total{result}); a flood?", self.max_connections, self.evicted,
                        self.refused)

    def _read(self, conn: _Conn) -> None:
        data = conn.sock.recv(16384)
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        if conn.outbuf or conn.close_after:
            if len(conn.inbuf) > MAX_HEADER:  # pipelining far ahead of reading the answers
                self._close(conn)
            return  # answer pending: the next request is handled once it is written
        self._next_request(conn)

    def _next_request(self, conn: _Conn) -> None:
        """Handle the request whose headers are complete in ``inbuf``, if any; 431 when they are too long."""
        end = conn.inbuf.find(b"\r\n\r\n")
        if end + 4 > MAX_HEADER or (end < 0 and len(conn.inbuf) > MAX_HEADER):
            self._respond(conn, 431, _json_body({"error": f"request headers over {MAX_HEADER} bytes"}),
                          "application/json", close=True)
            return
        if end < 0:
            return
        head = bytes(conn.inbuf[:end])
        del conn.inbuf[:end + 4]
        self._handle(conn, head)

    def _handle(self, conn: _Conn, head: bytes) -> None:
        conn.last_request = time.monotonic()
        conn.served += 1
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            log.debug("http %s: bad request line %s", conn.peer, loggable(lines[0], 100))
            self._respond(conn, 400, _json_body({"error": "bad request"}), "application/json", close=True)
            return
        method, target, version = parts
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
            close = True  # no endpoint takes a body: answer, then drop the connection and whatever it sent
        if method not in ("GET", "HEAD"):
            self._respond(conn, 405, _json_body({"error": "read-only endpoint: GET or HEAD"}), "application/json",
                          close=True, extra={"Allow": "GET, HEAD"})
            return
        path = target.split("?", 1)[0]
        log.debug("http %s %s %s", conn.peer, method, loggable(path, 100))
        code, body, ctype = self._route(path, headers.get("accept", ""))
        self._respond(conn, code, b"" if method == "HEAD" else body, ctype, close=close, length=len(body))

    def _route(self, path: str, accept: str) -> Tuple[int, bytes, str]:
        if path == "/metrics":
            body, ctype = self._metrics(accept)
            return 200, body, ctype
        if path == "/healthz":
            ok, doc = health_verdict(self.snapshot(), self._stale_after(), self.monotonic())
            return (200 if ok else 503), _json_body(doc), "application/json"
        if path in ("/active", "/standby"):
            ok, doc = role_verdict(self.snapshot(), path[1:], self._stale_after(), self.monotonic())
            return (200 if ok else 503), _json_body(doc), "application/json"
        if path == "/status":
            snap = self.snapshot()
            if snap is None:
                doc = {"state": NO_SNAPSHOT_STATE, "error": "no cycle completed yet"}
                return 503, _json_body(doc), "application/json"
            return 200, _json_body(snap.to_json()), "application/json"
        return 404, _json_body({"error": "not found", "paths": PATHS}), "application/json"

    def _metrics(self, accept: str) -> Tuple[bytes, str]:
        encoder, ctype = choose_encoder(accept)
        now = time.monotonic()
        cached = self._metrics_cache.get(ctype)
        if cached is not None and now - cached[0] < METRICS_TTL:
            return cached[1], ctype
        body = encoder(self.registry)
        self._metrics_cache[ctype] = (now, body)
        return body, ctype

    def _respond(self, conn: _Conn, code: int, body: bytes, ctype: str, close: bool = False,
                 length: Optional[int] = None, extra: Optional[Dict[str, str]] = None) -> None:
        headers: List[str] = [
            f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}",
            "Server: mqguard",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body) if length is None else length}",
            "Cache-Control: no-store",
        ] + [f"{k}: {v}" for k, v in (extra or {}).items()]
        if close:
            headers.append("Connection: close")
        conn.outbuf += ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body
        conn.close_after = close
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except BlockingIOError:
                sent = 0
            del conn.outbuf[:sent]
        if conn.outbuf:
            self._sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            return
        if conn.close_after:
            self._close(conn)
            return
        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
        conn.deadline = time.monotonic() + (HEADER_TIMEOUT if conn.inbuf else IDLE_TIMEOUT)
        self._next_request(conn)  # a pipelined request may already be here

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if now >= c.deadline]:
            log.debug("http %s: dropped (too slow)", conn.peer)
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd >= 0:
            self._conns.pop(fd, None)
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()


def _eviction_order(conn: _Conn) -> Tuple[int, float]:
    """(kind, age) of a connection, the smallest closed first: not reading its answers (0, oldest first), served
    and idle (1, oldest first), no request yet (2, NEWEST first). A flood's newcomers may still have their
    requests in the kernel when the cap is reached, so they look like a load balancer's check that connected
    earlier and has not sent its request yet; the newest goes first, and a silent connection cannot hold a slot
    long anyway (its headers must arrive within HEADER_TIMEOUT)."""
    if conn.outbuf:
        return 0, conn.last_request
    if conn.served:
        return 1, conn.last_request
    return 2, -conn.last_request


def _json_body(doc: Dict[str, Any]) -> bytes:
    return (json.dumps(doc, sort_keys=True) + "\n").encode()
