#!/usr/bin/env python3
"""Trim the vendored botocore to the calls mqguard makes (mqguard/aws/calls.py).

botocore ships models for every AWS service (~27 MB); mqguard calls a handful
of operations of four services. Besides dropping the other models, the data
botocore keeps in memory for the life of a client is cut to what mqguard's
calls need: endpoints.json keeps only those services' entries of each
partition (735 KB of JSON, several MiB once loaded), and each kept model keeps
only mqguard's operations and the shapes they use, without documentation.
Partition, retry, default-config and endpoint-rule data stay whole. The
package test builds every client from the installed files and calls it.
"""

import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Set

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mqguard.aws.calls import CALLS  # the one list of calls


def _shapes_used(model: Dict[str, Any]) -> Set[str]:
    """Every shape the kept operations reach (inputs, outputs, errors, members, list and map parts)."""
    todo = []
    for op in model["operations"].values():
        todo += [op[k]["shape"] for k in ("input", "output") if k in op]
        todo += [e["shape"] for e in op.get("errors", [])]
    seen: Set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = model["shapes"][name]
        refs = list(shape.get("members", {}).values()) + [shape[k] for k in ("member", "key", "value") if k in shape]
        todo += [ref["shape"] for ref in refs]
    return seen


def _undocumented(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _undocumented(v) for k, v in node.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(node, list):
        return [_undocumented(v) for v in node]
    return node


def trim_service_model(path: Path, service: str) -> str:
    """Keep ``service``'s operations of CALLS and their shapes; returns the model's endpoint prefix."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        model = json.load(fh)
    wanted = CALLS[service]
    model["operations"] = {k: v for k, v in model["operations"].items() if k in wanted}
    missing = set(wanted) - set(model["operations"])
    if missing:
        raise SystemExit(f"botocore's {service} model lacks {sorted(missing)}")
    used = _shapes_used(model)
    model["shapes"] = {k: v for k, v in model["shapes"].items() if k in used}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(_undocumented(model), fh, separators=(",", ":"))
    return str(model["metadata"]["endpointPrefix"])


def trim_endpoints(path: Path, prefixes: Set[str]) -> None:
    """endpoints.json is keyed by endpoint prefix (CloudWatch's is ``monitoring``, EFS's ``elasticfilesystem``)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    for partition in doc["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in prefixes}
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")


def prune(lib: Path) -> int:
    data = lib / "botocore" / "data"
    removed = 0
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in CALLS:
            shutil.rmtree(entry)
            removed += 1
    prefixes: Set[str] = set()
    for service in CALLS:
        for version in (data / service).iterdir():
            prefixes.add(trim_service_model(version / "service-2.json.gz", service))
            for unused in ("examples-1.json", "paginators-1.json", "paginators-1.sdk-extras.json",
                           "waiters-2.json"):
                (version / unused).unlink(missing_ok=True)
    trim_endpoints(data / "endpoints.json", prefixes)
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
