"""A real IMDSv2 server on 127.0.0.1 for tests (token PUT required; 401 without it)."""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional


class ImdsServer:
    def __init__(self, instance_id: str = "i-0123456789abcdef0", region: str = "us-east-1") -> None:
        self.paths: Dict[str, str] = {
            "meta-data/instance-id": instance_id,
            "meta-data/placement/region": region,
        }
        self.tokens: Dict[str, int] = {}
        self.requests: List[str] = []  # "METHOD path status"
        self.fail_next = 0  # answer this many requests with 500
        self.refuse_token = False  # answer the token PUT with 403 (as an IMDSv1-only endpoint would)
        self.drip = 0.0  # send each body byte after this many seconds (a server that keeps a client hanging)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def _reply(self, code: int, body: str = "") -> None:
                data = body.encode()
                with server._lock:
                    server.requests.append(f"{self.command} {self.path} {code}")
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.drip and data:
                    try:
                        for i in range(min(len(data), 200)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(server.drip)
                    except OSError:
                        pass  # the client gave up, as it should
                    return
                self.wfile.write(data)

            def do_PUT(self) -> None:
                if self.path != "/latest/api/token":
                    return self._reply(404)
                if server.refuse_token:
                    return self._reply(403)
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return self._reply(400)
                token = secrets.token_urlsafe(24)
                server.tokens[token] = int(ttl)
                self._reply(200, token)

            def do_GET(self) -> None:
                if server.fail_next > 0:
                    server.fail_next -= 1
                    return self._reply(500)
                token = self.headers.get("X-aws-ec2-metadata-token")
                if token not in server.tokens:
                    return self._reply(401)
                key = self.path[len("/latest/"):] if self.path.startswith("/latest/") else None
                value = server.paths.get(key or "")
                if value is None:
                    return self._reply(404)
                self._reply(200, value)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ImdsServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="imds", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
