"""Every AWS call mqguard makes, by botocore service name: the one list the RPM's pruning keeps (and nothing more).

A call missing here works from the source tree and fails in the package with ``UnknownServiceError`` or
``OperationNotFound``; the package test builds each client from the installed files and calls it.
"""

from __future__ import annotations

from typing import Dict, Tuple

from mqguard.aws.autoscaling import OPERATIONS

CALLS: Dict[str, Tuple[str, ...]] = {
    "autoscaling": OPERATIONS,  # health reports, lifecycle hooks, the creation record
    "cloudformation": ("SignalResource",),  # [aws] cfn_stack: the rolling update's signal (aws/cfn.py)
    "efs": ("DescribeFileSystems",),  # preflight --storage: the throughput mode
    "cloudwatch": ("GetMetricStatistics",),  # preflight --storage: the burst credit balance
}
