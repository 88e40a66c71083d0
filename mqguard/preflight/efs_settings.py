"""The storage check on AWS: which EFS file system is mounted, and its throughput mode and burst credits, read
(read-only) from the EFS and CloudWatch APIs through the instance role. A permission the role lacks, or an API that
does not answer, is a WARN that says which, never a failure of the check."""

from __future__ import annotations

import re
from typing import Any, List

from mqguard.preflight.figures import FAIL, PASS, WARN, Check

_FS_ID = re.compile(r"\b(fs-[0-9a-f]{8,40})\b")


def filesystem_id(storage_path: str, mountinfo: str = "/proc/self/mountinfo", fstab: str = "/etc/fstab") -> str:
    """The EFS file system behind ``storage_path``: from the mount's source (NFS mounts name it), else from the
    fstab line for it (efs-utils' TLS mounts show 127.0.0.1 as their source); "" when neither says."""
    from mqguard.efs.storage import find_mount

    entry = find_mount(storage_path, mountinfo)
    if entry is not None:
        m = _FS_ID.search(entry.source)
        if m:
            return m.group(1)
    try:
        with open(fstab, encoding="utf-8", errors="replace") as fh:
            for line in fh.read(65536).splitlines():
                words = line.split()
                if len(words) >= 2 and not words[0].startswith("#") and words[1].rstrip("/") == \
                        storage_path.rstrip("/"):
                    m = _FS_ID.search(words[0])
                    if m:
                        return m.group(1)
    except OSError:
        pass
    return ""


BURST_WARN = 512 * 1024 ** 3  # bytes of burst credit: below this a busy day empties it
BURST_FAIL = 10 * 1024 ** 3


def aws_checks(fs_id: str, efs: Any, cloudwatch: Any, now: float) -> List[Check]:
    """throughput_mode and burst_credit_balance from the EFS and CloudWatch APIs (read-only). A permission the
    role lacks, or an API that does not answer, is a WARN that says which: never a failure of the check."""
    from datetime import datetime, timedelta, timezone

    from mqguard.aws.errors import classify

    def denied(operation: str, exc: BaseException) -> str:
        err = classify(exc)
        if err.access:
            action = {"DescribeFileSystems": "elasticfilesystem:DescribeFileSystems",
                      "GetMetricStatistics": "cloudwatch:GetMetricStatistics"}[operation]
            return f"the instance role may not call {action}: not checked"
        return f"{operation} failed: {err.code}: {err.message[:150]}"

    if not fs_id:
        why = "the file system's id is neither in the mount's source nor in /etc/fstab: not checked"
        return [Check("throughput_mode", WARN, None, "", why), Check("burst_credit_balance", WARN, None, "B", why)]
    try:
        fs = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
    except Exception as exc:  # classified: AccessDenied, throttling, network
        why = denied("DescribeFileSystems", exc)
        return [Check("throughput_mode", WARN, None, "", why), Check("burst_credit_balance", WARN, None, "B", why)]
    mode = str(fs.get("ThroughputMode", "unknown"))
    size = fs.get("SizeInBytes", {}).get("Value", 0)
    if mode == "bursting":
        out = [Check("throughput_mode", WARN, None, "",
                     f"{fs_id} bursting: its baseline is 50 KiB/s per GiB stored ({size / 1024 ** 3:.1f} GiB), "
                     "bursts spend credits; elastic throughput fits MQ's spiky log writes")]
        try:
            end = datetime.fromtimestamp(now, timezone.utc)
            points = cloudwatch.get_metric_statistics(
                Namespace="AWS/EFS", MetricName="BurstCreditBalance",
                Dimensions=[{"Name": "FileSystemId", "Value": fs_id}], StartTime=end - timedelta(minutes=30),
                EndTime=end, Period=60, Statistics=["Minimum"])["Datapoints"]
        except Exception as exc:
            return [*out, Check("burst_credit_balance", WARN, None, "B", denied("GetMetricStatistics", exc))]
        if not points:
            return [*out, Check("burst_credit_balance", WARN, None, "B", "CloudWatch has no data point of the last "
                                                                            "30 minutes")]
        last = float(sorted(points, key=lambda p: p["Timestamp"])[-1]["Minimum"])
        v = FAIL if last < BURST_FAIL else WARN if last < BURST_WARN else PASS
        return [*out, Check("burst_credit_balance", v, last, "B",
                            f"{last / 1024 ** 3:.0f} GiB of burst credit left (below {BURST_WARN // 1024 ** 3} GiB: "
                            "WARN, below 10 GiB: FAIL - the file system then runs at its baseline)")]
    return [Check("throughput_mode", PASS, None, "", f"{fs_id} {mode} throughput"),
            Check("burst_credit_balance", PASS, None, "B", f"not bursting ({mode}): no credits to run out")]
