"""EC2 instance metadata, IMDSv2 only, with a deadline on every whole request.

A session token is fetched with PUT, cached, and renewed well before it
expires; every GET carries it. IMDS is local and either answers at once or is
not there, so each request has a deadline for the whole exchange (connect,
headers and body together: a server that drips bytes cannot hold mqguard), the
body is size-capped, and the values mqguard acts on are validated.

The client speaks HTTP/1.0 over a plain socket: the exchange is tiny, and owning
the read loop is what makes the deadline and the size cap exact.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import urllib.parse
from typing import Callable, Dict, Optional, Tuple

from mqguard.base.untrusted import quoted

log = logging.getLogger(__name__)

TOKEN_TTL = 21600  # seconds, the maximum IMDS allows
_RENEW_MARGIN = 600  # renew this long before expiry
MAX_BODY = 8192  # every answer mqguard reads is well under 1 KiB
REQUEST_DEADLINE = 2.0  # one whole request
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class ImdsError(Exception):
    pass


class ImdsNotFound(ImdsError):
    """The path does not exist (e.g. no spot interruption announced)."""


class ImdsHttpError(ImdsError):
    def __init__(self, code: int, path: str) -> None:
        super().__init__(f"HTTP {code} for {path}")
        self.code = code


def http_exchange(host: str, port: int, method: str, path: str, headers: Dict[str, str],
                  deadline: float, max_body: int = MAX_BODY) -> Tuple[int, bytes]:
    """One HTTP/1.0 request; (status, body). OSError/ImdsError past the deadline or the size cap."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ImdsError("deadline passed before the request")
    lines = [f"{method} {path} HTTP/1.0", f"Host: {host}", "Connection: close", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    with socket.create_connection((host, port), timeout=left) as sock:
        sock.sendall(request)
        data = bytearray()
        limit = max_body + 4096  # the body plus a generous header block
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ImdsError(f"no complete answer within {REQUEST_DEADLINE:g}s")
            sock.settimeout(left)
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if len(data) > limit:
                raise ImdsError(f"answer larger than {max_body} bytes")
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    m = re.match(r"^HTTP/\d\.\d (\d{3})", status_line)
    if not sep or not m:
        raise ImdsError(f"not an HTTP answer: {quoted(status_line)}")
    if len(body) > max_body:
        raise ImdsError(f"answer larger than {max_body} bytes")
    return int(m.group(1)), body


class Imds:
    def __init__(
        self,
        base_url: str,
        timeout: float = REQUEST_DEADLINE,
        attempts: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))  # imds_url is validated by the config schema
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname or "169.254.169.254"
        self.port = parts.port or 80
        self.prefix = parts.path
        self.timeout = timeout
        self.attempts = attempts
        self._monotonic = monotonic
        self._sleep = sleep
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, headers: Dict[str, str], deadline: float) -> str:
        code, body = http_exchange(self.host, self.port, method, self.prefix + path, headers,
                                   min(deadline, time.monotonic() + self.timeout))
        if code == 404:
            raise ImdsNotFound(path)
        if code != 200:
            raise ImdsHttpError(code, path)
        return body.decode("utf-8", "replace").strip()

    def _get_token(self, deadline: float, force: bool = False) -> str:
        with self._lock:
            now = self._monotonic()
            if force or self._token is None or now >= self._token_expires - _RENEW_MARGIN:
                token = self._request(
                    "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)}, deadline
                )
                if not token or len(token) > 512 or not token.isprintable():
                    raise ImdsError("instance metadata returned an unusable session token")
                self._token = token
                self._token_expires = now + TOKEN_TTL
            return self._token

    def get(self, path: str, within: Optional[float] = None) -> str:
        """GET /latest/<path>; ImdsNotFound on 404, ImdsError otherwise.

        ``within`` bounds the whole call, retries included (default: the
        attempts' deadlines and pauses added up).
        """
        deadline = time.monotonic() + (within if within is not None else self.attempts * (self.timeout + 0.5))
        last: Exception = ImdsError("no attempt made")
        force = False
        for attempt in range(1, self.attempts + 1):
            try:
                token = self._get_token(deadline, force)
                return self._request("GET", "/latest/" + path.lstrip("/"), {"X-aws-ec2-metadata-token": token},
                                     deadline)
            except ImdsNotFound:
                raise
            except ImdsHttpError as exc:
                last = exc
                force = exc.code == 401  # token expired or revoked: get a new one
            except (ImdsError, OSError, ValueError) as exc:
                last = exc
            pause = 0.2 * attempt
            if attempt == self.attempts or time.monotonic() + pause >= deadline:
                break
            self._sleep(pause)
        raise ImdsError(f"instance metadata {path}: {last}")

    def instance_id(self) -> str:
        value = self.get("meta-data/instance-id")
        if not _INSTANCE_ID.fullmatch(value):
            raise ImdsError(f"instance metadata gave an invalid instance id {quoted(value)}")
        return value

    def region(self) -> str:
        value = self.get("meta-data/placement/region")
        if not _REGION.fullmatch(value):
            raise ImdsError(f"instance metadata gave an invalid region {quoted(value)}")
        return value
