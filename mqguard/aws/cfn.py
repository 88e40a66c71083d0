"""Telling CloudFormation whether a new instance works: SignalResource, once, SUCCESS or FAILURE.

With the kit's ``WaitOnResourceSignals`` a rolling update (a new AMI, new parameters) waits for each new instance's
signal before it goes on, and rolls back on a FAILURE or when no signal comes in time: an AMI that never starts MQ
is rolled back instead of replacing every instance with one that does not work. mqguard signals SUCCESS when the
queue manager is healthy for the first time (the launch hook completed) and FAILURE when it abandons the launch
(the instance cannot serve). ``[aws] cfn_stack`` empty: nothing is signalled.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from mqguard.aws.autoscaling import AutoScaling, call_until_done, make_client
from mqguard.aws.errors import AwsErrors, classify
from mqguard.base.retry import Backoff

log = logging.getLogger(__name__)


class StackSignal:
    def __init__(self, asg: AutoScaling, stack: str, resource: str, stop: threading.Event,
                 errors: Optional[AwsErrors] = None, backoff: Optional[Backoff] = None,
                 client_factory: Optional[Callable[[str, str], Any]] = None) -> None:
        self.asg = asg  # its identity (instance id, region) and IMDS
        self.stack = stack
        self.resource = resource
        self.stop = stop
        self.errors = errors
        self.backoff = backoff or Backoff(base=2.0, cap=30.0)
        self._factory = client_factory or (lambda region, url: make_client(region, url, asg.imds, "cloudformation"))
        self._sent = False
        self._lock = threading.Lock()

    def send(self, success: bool, reason: str) -> None:
        """In the background, once per process: the first word is the one that counts."""
        with self._lock:
            if self._sent or not self.stack:
                return
            self._sent = True
        threading.Thread(target=self._send, args=(success, reason), name="cfn-signal", daemon=True).start()

    def _send(self, success: bool, reason: str) -> None:
        status = "SUCCESS" if success else "FAILURE"
        try:
            ident = self.asg.identity()
            client = self._factory(ident.region, self.asg.endpoint_url)
            call_until_done(f"SignalResource({self.stack}/{self.resource}, {status})", "SignalResource",
                            lambda: client.signal_resource(StackName=self.stack, LogicalResourceId=self.resource,
                                                           UniqueId=ident.instance_id, Status=status),
                            self.stop, self.backoff, max_attempts=8, errors=self.errors)
            log.info("signalled %s to CloudFormation (%s/%s): %s", status, self.stack, self.resource, reason)
        except Exception as exc:
            said = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))  # whole, not cut at 300
            if classify(exc).code == "ValidationError" and "cannot be signaled" in said:
                # CloudFormation's answer when no create or update waits for this instance (every replacement
                # after a failure, every warm-pool instance): normal, nothing to tell it
                log.info("CloudFormation is not waiting for this instance's signal (%s): %s not sent", said[-200:],
                         status)
                return
            log.error("could not signal %s to CloudFormation (%s/%s): %s; an update waiting for this instance "
                      "times out and rolls back", status, self.stack, self.resource, exc)
