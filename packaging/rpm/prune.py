#!/usr/bin/env python3
"""Trim the vendored botocore to what mqguard uses (the Auto Scaling model).

botocore ships models for every AWS service (~27 MB); mqguard calls only Auto
Scaling. Endpoint, partition, retry and default-config data stay. The package
test creates an Auto Scaling client from the installed files to prove it.
"""

import shutil
import sys
from pathlib import Path

KEEP_SERVICES = {"autoscaling"}


def prune(lib: Path) -> int:
    data = lib / "botocore" / "data"
    removed = 0
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in KEEP_SERVICES:
            shutil.rmtree(entry)
            removed += 1
    for extra in (lib / "boto3" / "data", lib / "bin"):
        if extra.exists():
            shutil.rmtree(extra)
    # pip's bookkeeping is meaningless inside an RPM (rpm owns these files now)
    for info in lib.glob("*.dist-info"):
        for name in ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json", "WHEEL"):
            (info / name).unlink(missing_ok=True)
    # library modules are imported, never executed: drop their shebangs
    for py in lib.rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        if text.startswith("#!"):
            py.write_text(text.split("\n", 1)[1] if "\n" in text else "", encoding="utf-8")
    return removed


if __name__ == "__main__":
    n = prune(Path(sys.argv[1]))
    print(f"pruned {n} unused service models from botocore")
