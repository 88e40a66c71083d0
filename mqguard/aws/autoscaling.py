"""The Auto Scaling calls mqguard makes, with classification and retry.

boto3 gets explicit timeouts and the ``standard`` retry mode; on top of that,
``call_until_done`` keeps retrying with backoff until the call succeeds or the
daemon is stopping, so a throttled or unreachable API never crashes mqguard
and never loses the one Unhealthy report.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from mqguard.aws.errors import (
    NOT_YET,
    PERMANENT,
    PERMANENT_FLOOR,
    AwsErrors,
    classify,
    iam_action,
    is_throttle_code,
    not_yet_delay,
)
from mqguard.aws.imds import Imds
from mqguard.base.retry import Backoff

log = logging.getLogger(__name__)

# Every Auto Scaling operation mqguard calls: the IAM policy, the metrics' zero
# series and the RPM's trimmed botocore model all follow this list.
OPERATIONS = (
    "SetInstanceHealth", "DescribeAutoScalingInstances", "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat",
    "DescribeTags", "CreateOrUpdateTags",
)  # and, with [aws] cfn_stack, CloudFormation's SignalResource (aws/cfn.py)

CallObserver = Callable[[str, str], None]  # (operation, result: ok | error | throttled)


def classify_attempt(response: Any, caught_exception: Any) -> str:
    """ok / throttled / error for one HTTP attempt (botocore needs-retry arguments)."""
    if caught_exception is not None:
        return "error"
    if not response:
        return "error"
    http, parsed = response
    code = (parsed or {}).get("Error", {}).get("Code", "")
    if is_throttle_code(code):
        return "throttled"
    if getattr(http, "status_code", 500) >= 400 or code:
        return "error"
    return "ok"


def xform_name(operation: str) -> str:
    """botocore's own operation-name to method-name rule (imported late: botocore is heavy)."""
    from botocore import xform_name as xform

    return str(xform(operation))


def make_client(region: str, endpoint_url: str, imds: Optional[Imds] = None, service: str = "autoscaling") -> Any:
    # botocore imports urllib3's pyOpenSSL shim only to find the standard SSLContext
    # again; where the distribution ships pyOpenSSL and cryptography that import
    # costs ~6 MiB of resident memory for nothing (urllib3 then uses the standard
    # ssl module, as it does without them). A None entry makes the import fail.
    sys.modules.setdefault("urllib3.contrib.pyopenssl", None)  # type: ignore[arg-type]
    import boto3
    import botocore.session
    from botocore.config import Config as BotoConfig

    from mqguard.aws import credentials

    core = botocore.session.get_session()
    # Whatever botocore still asks IMDS itself: IMDSv2 only (it would otherwise fall
    # back to v1 when the token PUT fails), at the configured address.
    core.set_config_variable("ec2_metadata_v1_disabled", True)
    if imds is not None:
        core.set_config_variable("ec2_metadata_service_endpoint", imds.base_url)
        # the instance role's credentials: through mqguard's own bounded IMDSv2 client
        credentials.install(core, imds)
        if core.get_credentials() is None:
            # none yet (the role's credentials can answer 404 for a while at boot): a client built now would
            # stay unsigned for good; raise instead, so the caller retries and the next client asks again
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()

    cfg = BotoConfig(
        region_name=region,
        connect_timeout=3,
        read_timeout=10,
        # one HTTP attempt per call: mqguard's own loop (call_until_done) retries with backoff and asks
        # before each attempt whether it is still wanted (a report for an episode that ended must not go out)
        retries={"mode": "standard", "total_max_attempts": 1},  # ("max_attempts" would count RETRIES)
        user_agent_extra="mqguard",
    )
    return boto3.session.Session(botocore_session=core).client(
        service, endpoint_url=endpoint_url or None, config=cfg)


@dataclass
class InstanceIdentity:
    instance_id: str
    region: str


class AutoScaling:
    """Auto Scaling for this instance; identity from config + IMDSv2, resolved lazily."""

    def __init__(
        self,
        imds: Imds,
        region: str,
        endpoint_url: str,
        observe: Optional[CallObserver] = None,
        client_factory: Optional[Callable[[str, str], Any]] = None,
    ) -> None:
        self.imds = imds
        self._region = region
        self._endpoint_url = endpoint_url
        self._observe = observe or (lambda op, res: None)
        self._client_factory = client_factory or (lambda region, url: make_client(region, url, imds))
        self._client: Any = None
        self._identity: Optional[InstanceIdentity] = None
        self._group = ""
        self._lock = threading.Lock()

    def identity(self) -> InstanceIdentity:
        with self._lock:
            if self._identity is None:
                region = self._region or self.imds.region()
                self._identity = InstanceIdentity(self.imds.instance_id(), region)
            return self._identity

    @property
    def endpoint_url(self) -> str:
        return self._endpoint_url

    def known_instance_id(self) -> Optional[str]:
        """The instance id if it was already looked up (never asks IMDS: for hooks' environment)."""
        with self._lock:
            return self._identity.instance_id if self._identity is not None else None

    def client(self) -> Any:
        ident = self.identity()
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(ident.region, self._endpoint_url)
                # botocore fires needs-retry after every HTTP attempt, including
                # its own retries: count each one, so throttling is visible.
                self._client.meta.events.register("needs-retry.auto-scaling", self._count_attempt)
            return self._client

    def _count_attempt(self, response: Any = None, caught_exception: Any = None, operation: Any = None,
                       **kwargs: Any) -> None:
        name = getattr(operation, "name", "?")
        self._observe(name, classify_attempt(response, caught_exception))

    def _call(self, operation: str, **params: Any) -> Dict[str, Any]:
        method = getattr(self.client(), xform_name(operation))
        response: Dict[str, Any] = method(**params)
        return response

    def set_unhealthy(self, respect_grace_period: bool) -> str:
        ident = self.identity()
        self._call(
            "SetInstanceHealth",
            InstanceId=ident.instance_id,
            HealthStatus="Unhealthy",
            ShouldRespectGracePeriod=respect_grace_period,
        )
        return ident.instance_id

    def group_name(self, configured: str = "") -> str:
        """The instance's Auto Scaling group: as configured, else looked up once."""
        if configured:
            return configured
        with self._lock:
            cached = self._group
        if cached:
            return cached
        found = self.describe_instance()
        if not found:
            raise LookupError(f"instance {self.identity().instance_id} is not in an Auto Scaling group")
        with self._lock:
            self._group = str(found["AutoScalingGroupName"])
            return self._group

    def complete_lifecycle_action(self, hook: str, group: str, result: str = "CONTINUE") -> None:
        self._call("CompleteLifecycleAction", LifecycleHookName=hook, AutoScalingGroupName=group,
                   InstanceId=self.identity().instance_id, LifecycleActionResult=result)

    def record_heartbeat(self, hook: str, group: str) -> None:
        self._call("RecordLifecycleActionHeartbeat", LifecycleHookName=hook, AutoScalingGroupName=group,
                   InstanceId=self.identity().instance_id)

    def group_tag(self, group: str, key: str) -> Optional[str]:
        """The value of tag ``key`` on ``group``, None when it has none."""
        resp = self._call("DescribeTags", Filters=[{"Name": "auto-scaling-group", "Values": [group]},
                                                   {"Name": "key", "Values": [key]}])
        return next((str(t.get("Value", "")) for t in resp.get("Tags", []) if t.get("Key") == key), None)

    def set_group_tag(self, group: str, key: str, value: str) -> None:
        self._call("CreateOrUpdateTags", Tags=[{"ResourceId": group, "ResourceType": "auto-scaling-group",
                                                "Key": key, "Value": value, "PropagateAtLaunch": False}])

    def describe_instance(self) -> Optional[Dict[str, Any]]:
        ident = self.identity()
        resp = self._call("DescribeAutoScalingInstances", InstanceIds=[ident.instance_id])
        items = resp.get("AutoScalingInstances", [])
        return items[0] if items else None


def call_until_done(
    what: str,
    operation: str,
    call: Callable[[], Any],
    stop: threading.Event,
    backoff: Optional[Backoff] = None,
    max_attempts: Optional[int] = None,
    errors: Optional[AwsErrors] = None,
    floor: float = PERMANENT_FLOOR,
) -> Any:
    """Retry ``call`` until it succeeds; None when stopped first.

    Throttling and transient failures back off (capped); a permanent failure
    (access denied, validation, no credentials) waits at least ``floor``
    between attempts, is logged at ERROR with the IAM action when access is
    the problem, and is recorded in ``errors`` until the call succeeds. With
    ``max_attempts`` the caller wants a bounded answer: a permanent failure is
    raised at once.
    """
    backoff = backoff or Backoff(base=1.0, cap=30.0)
    attempt = 0
    said = ""
    while not stop.is_set():
        attempt += 1
        try:
            result = call()
        except Exception as exc:  # classified below: throttling, 5xx, network, IMDS, IAM, validation
            err = classify(exc)
            if max_attempts is not None and (attempt >= max_attempts or err.kind == PERMANENT):
                raise
            delay = backoff.delay(attempt)
            if err.kind == NOT_YET:
                # when AWS says the period ends, but never sooner than the contract's floor for a ValidationError
                delay = max(not_yet_delay(err.message) or delay, floor)
                if said != err.code:
                    said = err.code
                    log.warning("%s refused until the group's health-check grace period ends (%s); asking again in "
                                "%.0fs. With a launch hook, HealthCheckGracePeriod 0 avoids this wait", what,
                                err.message, delay)
            elif err.kind == PERMANENT:
                delay = max(delay, floor)
                if errors is not None:
                    errors.failed(operation, err)
                if said != err.code:
                    said = err.code
                    hint = (f"; the instance role needs the IAM action {iam_action(operation)} "
                            "(see examples/iam-policy.json)") if err.access else ""
                    log.error("%s failed: %s: %s%s; retrying every %.0fs until it works", what, err.code,
                              err.message, hint, delay)
                else:
                    log.debug("%s still failing: %s (attempt %d)", what, err.code, attempt)
            else:
                log.warning("%s failed (%s, attempt %d): %s; retrying in %.1fs", what, err.kind, attempt,
                            err.message, delay)
            if stop.wait(delay):
                break
            continue
        if errors is not None:
            errors.succeeded(operation)
        if said:
            log.info("%s succeeded after %d attempts", what, attempt)
        return result
    log.warning("%s abandoned: mqguard is stopping", what)
    return None
