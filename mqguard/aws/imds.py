"""EC2 instance metadata, IMDSv2 only.

A session token is fetched with PUT, cached, and renewed well before it
expires; every GET carries it. Short timeouts and a few retries: IMDS is local
and either answers at once or is not there.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Optional

log = logging.getLogger(__name__)

TOKEN_TTL = 21600  # seconds, the maximum IMDS allows
_RENEW_MARGIN = 600  # renew this long before expiry


class ImdsError(Exception):
    pass


class ImdsNotFound(ImdsError):
    """The path does not exist (e.g. no spot interruption announced)."""


class Imds:
    def __init__(
        self,
        base_url: str,
        timeout: float = 1.0,
        attempts: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self._monotonic = monotonic
        self._sleep = sleep
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        # No proxies: IMDS is link-local and must never go through an HTTP proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str:
        # imds_url is validated as http(s) by the config schema
        req = urllib.request.Request(self.base_url + path, method=method, headers=headers)  # noqa: S310
        with self._opener.open(req, timeout=self.timeout) as resp:
            body: bytes = resp.read(65536)
            return body.decode("utf-8", "replace")

    def _get_token(self, force: bool = False) -> str:
        with self._lock:
            now = self._monotonic()
            if force or self._token is None or now >= self._token_expires - _RENEW_MARGIN:
                self._token = self._request(
                    "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)}
                ).strip()
                self._token_expires = now + TOKEN_TTL
            return self._token

    def get(self, path: str) -> str:
        """GET /latest/<path>; raises ImdsNotFound on 404, ImdsError otherwise."""
        last: Exception = ImdsError("no attempt made")
        force = False
        for attempt in range(1, self.attempts + 1):
            try:
                token = self._get_token(force)
                return self._request("GET", "/latest/" + path.lstrip("/"), {"X-aws-ec2-metadata-token": token}).strip()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise ImdsNotFound(path) from None
                last = exc
                force = exc.code == 401  # token expired or revoked: get a new one
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = exc
            if attempt < self.attempts:
                self._sleep(0.2 * attempt)
        raise ImdsError(f"instance metadata {path}: {last}")

    def instance_id(self) -> str:
        return self.get("meta-data/instance-id")

    def region(self) -> str:
        return self.get("meta-data/placement/region")
