"""What a failed AWS call means, and the last one that retrying cannot fix.

Three classes (docs/deploying.md, "AWS errors"), and "not yet":
- throttled: Throttling and its siblings; retried with backoff;
- transient: 5xx, connection trouble, instance metadata hiccups; retried with backoff;
- permanent: AccessDenied, UnauthorizedOperation, ValidationError, other 4xx,
  missing credentials: retrying soon cannot help (someone must fix IAM or the
  configuration), so it is retried no more often than every 30 s, logged at
  ERROR with the missing IAM action, and shown in /status as ``aws_error``.
- not_yet: SetInstanceHealth refused with ValidationError because the instance is
  younger than the group's health-check grace period (ShouldRespectGracePeriod).
  Nothing is wrong with IAM or the call: it is retried when AWS says the period
  ends (at most 5 minutes ahead, never sooner than PERMANENT_FLOOR, the episode
  asked again first), logged once at WARNING, not recorded as the aws_error.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

THROTTLED, TRANSIENT, PERMANENT, NOT_YET = "throttled", "transient", "permanent", "not_yet"
PERMANENT_FLOOR = 30.0  # seconds between attempts of a call that failed permanently
NOT_YET_MAX = 300.0  # never wait longer than this for a grace period to end: ask again then

_GRACE_PERIOD = re.compile(r"grace period of (\d{1,9}) seconds")
_INSTANCE_AGE = re.compile(r"age of the instance \((\d{1,9}) seconds\)")

_THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                   "SlowDown", "RequestThrottled"}
_ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                 "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "AuthFailure"}
# botocore exceptions that mean "the network or the endpoint is not there right now"
_TRANSIENT_NAMES = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                    "ProxyConnectionError", "SSLError", "HTTPClientError", "ImdsError", "MetadataRetrievalError"}
_PERMANENT_NAMES = {"NoCredentialsError", "PartialCredentialsError", "ParamValidationError", "NoRegionError",
                    "LookupError"}


@dataclass(frozen=True)
class CallError:
    kind: str  # THROTTLED | TRANSIENT | PERMANENT
    code: str  # the API's error code, or the exception's name
    message: str
    access: bool = False  # an authorization failure: an IAM action is missing


def is_throttle_code(code: str) -> bool:
    return code in _THROTTLE_CODES


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or "")
    return ""


def classify(exc: BaseException) -> CallError:
    """The class of a failed call. Pure."""
    code = error_code(exc)
    message = str(exc)[:300]
    if code:
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        if code in _THROTTLE_CODES:
            return CallError(THROTTLED, code, message)
        if code in _ACCESS_CODES:
            return CallError(PERMANENT, code, message, access=True)
        detail = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "") or message)[:300]
        if code == "ValidationError" and _GRACE_PERIOD.search(detail):
            return CallError(NOT_YET, code, detail)
        if status >= 500 or code in ("InternalFailure", "ServiceUnavailable", "InternalError"):
            return CallError(TRANSIENT, code, message)
        return CallError(PERMANENT, code, message)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _PERMANENT_NAMES:
        return CallError(PERMANENT, type(exc).__name__, message)
    return CallError(TRANSIENT, type(exc).__name__, message)


def not_yet_delay(message: str) -> Optional[float]:
    """Seconds until the grace period AWS named ends (+1), within [1, NOT_YET_MAX]; None if unnamed. Pure."""
    grace = _GRACE_PERIOD.search(message)
    if not grace:
        return None
    age = _INSTANCE_AGE.search(message)
    left = int(grace.group(1)) - (int(age.group(1)) if age else 0) + 1
    return float(min(max(left, 1), NOT_YET_MAX))


def iam_action(operation: str) -> str:
    """The IAM action an Auto Scaling operation needs, e.g. autoscaling:SetInstanceHealth."""
    return f"autoscaling:{operation}"


class AwsErrors:
    """The last permanent error per operation, until that operation succeeds (thread-safe)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._by_op: Dict[str, Dict[str, Any]] = {}

    def failed(self, operation: str, err: CallError) -> None:
        with self._lock:
            old = self._by_op.get(operation)
            since = old["since"] if old and old["code"] == err.code else self._wall()
            self._by_op[operation] = {"operation": operation, "code": err.code, "message": err.message,
                                      "since": since}

    def succeeded(self, operation: str) -> None:
        with self._lock:
            self._by_op.pop(operation, None)

    def current(self) -> Optional[Dict[str, Any]]:
        """The most recent unresolved permanent error, or None."""
        with self._lock:
            if not self._by_op:
                return None
            return dict(max(self._by_op.values(), key=lambda e: float(e["since"])))
