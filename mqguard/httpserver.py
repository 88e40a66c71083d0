"""/metrics, /healthz and /status on ``metrics.listen``.

Handlers only read the last snapshot (and the metrics registry, which reads
snapshots too): no MQ command, no EFS access, so they answer in milliseconds
even while EFS hangs.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from mqguard.supervisor.snapshot import Snapshot

log = logging.getLogger(__name__)

SnapshotSource = Callable[[], Optional[Snapshot]]


def health_verdict(snap: Optional[Snapshot], stale_after: float, now: float) -> Tuple[bool, Dict[str, Any]]:
    """(healthy?, JSON body) for /healthz. A stalled loop is not healthy, whatever it said last."""
    if snap is None:
        return False, {"healthy": False, "state": "starting", "reasons": ["no cycle completed yet"]}
    reasons = list(snap.bad_reasons)
    healthy = snap.healthy
    if snap.last_cycle is not None and now - snap.last_cycle > stale_after:
        healthy = False
        reasons.append(f"supervision loop stalled: last cycle {now - snap.last_cycle:.0f}s ago")
    if not healthy and not reasons:
        reasons.append(snap.state)
    return healthy, {
        "healthy": healthy, "state": snap.state, "qmgr": snap.qmgr, "qmgr_status": snap.qmgr_status,
        "reasons": reasons,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: Tuple[str, int], handler: type, family: int) -> None:
        self.address_family = family
        super().__init__(addr, handler)


class HttpEndpoint:
    def __init__(self, host: str, port: int, snapshot: SnapshotSource, registry: CollectorRegistry,
                 stale_after: float, wall: Callable[[], float] = time.time) -> None:
        self.snapshot = snapshot
        self.registry = registry
        self.stale_after = stale_after
        self.wall = wall
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "mqguard"
            # headers and body go out in two writes: without TCP_NODELAY, Nagle plus
            # the client's delayed ACK adds ~40 ms to every keep-alive response
            disable_nagle_algorithm = True

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http %s - %s", self.address_string(), fmt % args)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                        self._send(200, encoder(endpoint.registry), ctype)
                    elif path == "/healthz":
                        ok, body = health_verdict(endpoint.snapshot(), endpoint.stale_after, endpoint.wall())
                        self._json(200 if ok else 503, body)
                    elif path == "/status":
                        snap = endpoint.snapshot()
                        if snap is None:
                            self._json(503, {"state": "starting", "error": "no cycle completed yet"})
                        else:
                            self._json(200, snap.to_json())
                    else:
                        self._json(404, {"error": "not found", "paths": ["/metrics", "/healthz", "/status"]})
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _json(self, code: int, doc: Dict[str, Any]) -> None:
                self._send(code, (json.dumps(doc, sort_keys=True) + "\n").encode(), "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = _Server((host, port), Handler, family)
        self.thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="http", daemon=True)
        self.thread.start()
        host = self.server.server_address[0]
        log.info("serving /metrics, /healthz and /status on %s:%d", host, self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)
