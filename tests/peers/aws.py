"""Moto's real server for Auto Scaling, and a fault-injecting proxy in front of it."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoAsg:
    """A moto server with one Auto Scaling group holding one instance."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.instance_id = ""
        self.asg_name = "mq-asg"

    def start(self) -> MotoAsg:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        ec2 = self.client("ec2")
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        asg = self.client("autoscaling")
        asg.create_launch_configuration(
            LaunchConfigurationName="mq-lc", ImageId=ami, InstanceType="t3.medium"
        )
        asg.create_auto_scaling_group(
            AutoScalingGroupName=self.asg_name,
            LaunchConfigurationName="mq-lc",
            MinSize=1, MaxSize=1, DesiredCapacity=1,
            AvailabilityZones=[f"{REGION}a", f"{REGION}b"],
        )
        self.instance_id = self.instances()[0]["InstanceId"]
        return self

    def forget_creates(self) -> None:
        """Remove mqguard's records of earlier creates from the group (mqguard:created:*)."""
        asg = self.client("autoscaling")
        tags = asg.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [self.asg_name]}])["Tags"]
        old = [{"ResourceId": self.asg_name, "ResourceType": "auto-scaling-group", "Key": t["Key"]}
               for t in tags if t["Key"].startswith("mqguard:created:")]
        if old:
            asg.delete_tags(Tags=old)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url, **CREDS)

    def instances(self) -> List[dict]:  # type: ignore[type-arg]
        resp = self.client("autoscaling").describe_auto_scaling_instances()
        return list(resp["AutoScalingInstances"])

    def health(self, instance_id: Optional[str] = None) -> str:
        iid = instance_id or self.instance_id
        for inst in self.instances():
            if inst["InstanceId"] == iid:
                return str(inst["HealthStatus"])
        return "MISSING"

    def stop(self) -> None:
        self.server.stop()


_THROTTLE = (
    b'<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>"
)


# What Auto Scaling answers SetInstanceHealth(ShouldRespectGracePeriod=true) inside the group's
# health-check grace period (the wording as reported in aws/aws-cli issue 171).
_GRACE = (
    b'<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
    b"<Code>ValidationError</Code><Message>The age of the instance (286 seconds) is less than the configured grace "
    b"period of 300 seconds</Message></Error><RequestId>x</RequestId></ErrorResponse>"
)

_DENIED = (
    b'<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/mq-role/i-0abc is not "
    b"authorized to perform: autoscaling:SetInstanceHealth</Message></Error><RequestId>x</RequestId></ErrorResponse>"
)

_LIFECYCLE_ACTIONS = ("CompleteLifecycleAction", "RecordLifecycleActionHeartbeat")


def _lifecycle_reply(action: str) -> bytes:
    return (
        f'<{action}Response xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/">'
        f"<{action}Result/><ResponseMetadata><RequestId>mqguard-test</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()


def _signal_reply() -> bytes:
    return (b'<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
            b"<ResponseMetadata><RequestId>mqguard-test</RequestId></ResponseMetadata></SignalResourceResponse>")


def _signal_refused(stack: str, state: str) -> bytes:
    return (f'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type>'
            f"<Code>ValidationError</Code><Message>Stack arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/"
            f"0a1b2c3d is in {state} state and cannot be signaled</Message></Error><RequestId>x</RequestId>"
            "</ErrorResponse>").encode()


class FaultProxy:
    """Forwards to ``upstream`` after failing the first requests as scripted.

    ``script`` is a list of "throttle" | "500" | "reset" | "denied" | "grace" (inside the group's
    health-check grace period); each request takes the
    next entry until the list is empty, then requests pass through.

    moto 5.2 does not implement the two lifecycle-hook calls nor CloudFormation's
    SignalResource; the proxy answers them as the real APIs do (an empty result)
    and records their parameters in ``lifecycle`` and ``signals``.
    """

    def __init__(self, upstream: str, script: List[str]) -> None:
        self.upstream = upstream
        self.script = list(script)
        self.seen: List[Tuple[str, str]] = []  # (action name, what we did)
        self.lifecycle: List[Dict[str, str]] = []  # parameters of lifecycle-hook calls
        self.lifecycle_at: List[float] = []  # when each of them arrived (time.time())
        self.signals: List[Dict[str, str]] = []  # parameters of SignalResource calls
        # what CloudFormation says of a signal: "" accepts it (an update or create waits for this instance);
        # a stack state refuses it as AWS does once nothing waits ("... is in UPDATE_COMPLETE state and cannot be
        # signaled", a ValidationError: every replacement outside an update hears it)
        self.stack_state = ""
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                params = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
                action = params.get("Action", "")
                with proxy._lock:
                    step = proxy.script.pop(0) if proxy.script else "pass"
                    proxy.seen.append((action, step))
                if step == "throttle":
                    self._send(400, _THROTTLE)
                elif step == "denied":
                    self._send(403, _DENIED)
                elif step == "grace":
                    self._send(400, _GRACE)
                elif step == "500":
                    self._send(500, b"<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>")
                elif step == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif action == "SignalResource":
                    with proxy._lock:
                        proxy.signals.append(params)
                    if proxy.stack_state:
                        self._send(400, _signal_refused(params.get("StackName", ""), proxy.stack_state))
                    else:
                        self._send(200, _signal_reply())
                elif action in _LIFECYCLE_ACTIONS:
                    with proxy._lock:
                        proxy.lifecycle.append(params)
                        proxy.lifecycle_at.append(time.time())
                    self._send(200, _lifecycle_reply(action))
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    req = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
                    try:
                        with urllib.request.urlopen(req, timeout=10) as resp:
                            self._send(resp.status, resp.read())
                    except urllib.error.HTTPError as exc:
                        self._send(exc.code, exc.read())

            def _send(self, code: int, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self.httpd.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
