"""Warm-pool refresh: CloudFormation's rolling update replaces InService instances only, never the
warm pool's; after an update this starts an instance refresh that skips matching instances, so the
stopped instances of the old launch template version (old AMI, old MQ) are replaced as well."""
import json
import time
import urllib.request

import boto3

KEYS = ("LaunchTemplateId", "LaunchTemplateVersion")


def respond(event, status, reason, physical):
    body = json.dumps({"Status": status, "Reason": reason[:900], "PhysicalResourceId": physical,
                       "StackId": event["StackId"], "RequestId": event["RequestId"],
                       "LogicalResourceId": event["LogicalResourceId"], "Data": {}}).encode()
    url = event["ResponseURL"]  # CloudFormation's pre-signed S3 URL
    req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    urllib.request.urlopen(req, timeout=30).close()  # noqa: S310


def start(asg, props, deadline, pause):
    group = props["GroupName"]
    while True:
        try:
            return asg.start_instance_refresh(
                AutoScalingGroupName=group, Strategy="Rolling",
                DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": props["LaunchTemplateId"],
                                                         "Version": str(props["LaunchTemplateVersion"])}},
                # never two instances (one queue manager, one data set); matching ones are left alone
                Preferences={"SkipMatching": True, "MinHealthyPercentage": 0, "MaxHealthyPercentage": 100,
                             "InstanceWarmup": 0})["InstanceRefreshId"]
        except asg.exceptions.InstanceRefreshInProgressFault:
            # an older refresh (an earlier update, or this update's rollback): the newest version wins
            if time.monotonic() > deadline:
                raise
            running = asg.describe_instance_refreshes(AutoScalingGroupName=group, MaxRecords=1)["InstanceRefreshes"]
            if running and running[0]["Status"] in ("Pending", "InProgress", "Baking"):
                asg.cancel_instance_refresh(AutoScalingGroupName=group)
            time.sleep(pause)


def handler(event, context, asg=None, budget=240.0, pause=5.0):
    physical = event.get("PhysicalResourceId") or "warm-pool-refresh"
    try:
        props = event["ResourceProperties"]
        old = event.get("OldResourceProperties") or {}
        reason = "nothing to replace"
        if event["RequestType"] == "Update" and any(str(props.get(k)) != str(old.get(k)) for k in KEYS):
            asg = asg or boto3.client("autoscaling")
            refresh = start(asg, props, time.monotonic() + budget, pause)
            reason = (f"instance refresh {refresh} replaces the instances not on version "
                      f"{props['LaunchTemplateVersion']}, the warm pool's included")
        print(reason)
        respond(event, "SUCCESS", reason, physical)
    except Exception as exc:  # every failure is CloudFormation's to hear, never a silent hang
        print(f"failed: {exc!r}")
        respond(event, "FAILED", f"{type(exc).__name__}: {exc}", physical)
