"""Was this queue manager created before? The Auto Scaling group remembers, so that a replaced file system, an
access point with another root or a mount of the wrong directory is never taken for a first create.

A stack update that replaces the file system (a new KMS key, another mqm UID/GID, a toggled mount mode) leaves
the new instance an empty directory where the queue manager's data was: creating a queue manager there would
give clients a healthy, EMPTY queue manager (docs/deploying.md, "Updating").
The record lives outside the file system, on
the group (a tag, ``mqguard:created:<name>``), written once after the first create; a deliberate re-create is an
operator's act: deleting that tag.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from mqguard.aws.autoscaling import AutoScaling, call_until_done
from mqguard.aws.errors import AwsErrors
from mqguard.base.retry import Backoff

log = logging.getLogger(__name__)

TAG_PREFIX = "mqguard:created:"


def tag_key(qmgr: str) -> str:
    """The group tag for ``qmgr`` (tag keys take letters, digits, spaces and ``_.:/=+-@``: '%' is spelled =25)."""
    return TAG_PREFIX + qmgr.replace("%", "=25")


class CreationRecord:
    def __init__(self, asg: AutoScaling, asg_name: str, qmgr: str, stop: threading.Event,
                 errors: Optional[AwsErrors] = None, backoff: Optional[Backoff] = None) -> None:
        self.asg = asg
        self.asg_name = asg_name  # configured, else looked up
        self.qmgr = qmgr
        self.key = tag_key(qmgr)
        self.stop = stop
        self.errors = errors
        self.backoff = backoff or Backoff(base=1.0, cap=10.0)

    def group(self) -> str:
        return self.asg.group_name(self.asg_name)

    def earlier(self) -> Optional[str]:
        """What the group recorded of an earlier create (None: never created for this group). Raises when the
        group cannot be asked: then nothing is created either."""
        value = call_until_done(f"DescribeTags({self.key})", "DescribeTags",
                                lambda: self.asg.group_tag(self.group(), self.key) or "", self.stop, self.backoff,
                                max_attempts=3, errors=self.errors)
        return str(value) or None

    def record(self, detail: str) -> None:
        """After a create: the group remembers it (bounded; a failure is said, loudly)."""
        try:
            call_until_done(f"CreateOrUpdateTags({self.key})", "CreateOrUpdateTags",
                            lambda: self.asg.set_group_tag(self.group(), self.key, detail[:256]), self.stop,
                            self.backoff, max_attempts=3, errors=self.errors)
            log.info("the Auto Scaling group %s records that %s was created: %s", self.group(), self.qmgr, detail)
        except Exception as exc:
            log.error("the Auto Scaling group could not record that %s was created (%s): if this file system is "
                      "ever replaced, a new instance cannot tell its data is missing", self.qmgr, exc)

    def how_to_recreate(self) -> str:
        group = self.asg_name or "<the group>"
        return (f"aws autoscaling delete-tags --tags ResourceId={group},ResourceType=auto-scaling-group,"
                f"Key={self.key}")
