"""What ``mqguard preflight --storage`` measured, judged and told: the series of latencies, the PASS/WARN/FAIL
thresholds, the estimates for MQ (the model in storage.py's docstring) and the report. Pure: no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

PAGE = 4096
WRITERS = 4  # concurrent log writers (committing applications)
MAX_SAMPLES = 50_000  # latencies kept per kind of operation (a reservoir; every operation is counted)
PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

# Thresholds: (pass at or better than, warn at or better than; worse fails). Latencies in ms, rates per second.
# Anchors: AWS gives EFS Regional writes "as low as 2.7 ms"; IBM's lab measures 2 KiB persistent log writes of
# 0.1-0.2 ms on SAN/NFS; a forced write above 20 ms holds every committing application to under 50 per second.
THRESHOLDS: Dict[str, Tuple[float, float, bool]] = {  # name: (pass, warn, lower is better)
    "log_write_p50": (5.0, 20.0, True),
    "log_write_p99": (25.0, 100.0, True),
    "log_writes_per_second": (200.0, 50.0, False),
    "log_writes_per_second_concurrent": (500.0, 100.0, False),
    "lock_round_trip_p50": (10.0, 50.0, True),
    "metadata_ops_per_second": (50.0, 10.0, False),
}


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    value: Optional[float]
    unit: str
    detail: str

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "value": self.value, "unit": self.unit,
                "detail": self.detail}


@dataclass
class Series:
    """Latencies (seconds) of one kind of operation, and the time they took in all. Every operation is counted,
    at most ``MAX_SAMPLES`` latencies are kept (a uniform reservoir: fast storage does a million lock round trips
    in a few seconds), the maximum exactly."""

    latencies: List[float] = field(default_factory=list)
    elapsed: float = 0.0
    count: int = 0
    worst: float = 0.0
    _rng: random.Random = field(default_factory=lambda: random.Random(1), repr=False)  # noqa: S311 (sampling)

    def add(self, latency: float) -> None:
        self.count += 1
        self.worst = max(self.worst, latency)
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(latency)
            return
        slot = self._rng.randrange(self.count)  # Vitter's algorithm R: each operation kept with equal chance
        if slot < MAX_SAMPLES:
            self.latencies[slot] = latency

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile (nearest rank) in seconds; 0 when nothing was measured; q = 1 is the exact maximum."""
        if not self.latencies:
            return 0.0
        if q >= 1.0:
            return self.worst
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Results:
    log: Series = field(default_factory=Series)
    concurrent: Series = field(default_factory=Series)
    locks: Series = field(default_factory=Series)
    metadata: Series = field(default_factory=Series)
    read_bytes_per_second: float = 0.0
    bytes_written: int = 0
    seconds: float = 0.0
    stopped_early: str = ""  # why a phase ended before its share of time (the byte budget)


def verdict(name: str, value: float) -> str:
    good, fair, lower = THRESHOLDS[name]
    if lower:
        return PASS if value <= good else WARN if value <= fair else FAIL
    return PASS if value >= good else WARN if value >= fair else FAIL


def checks_for(r: Results) -> List[Check]:
    ms = 1000.0
    out = []
    for name, value, unit, detail in (
        ("log_write_p50", r.log.quantile(0.5) * ms, "ms",
         f"one 4 KiB log page made durable (write + fdatasync), one writer; p95 {r.log.quantile(0.95) * ms:.2f} ms, "
         f"max {r.log.quantile(1.0) * ms:.2f} ms, {r.log.count} writes"),
        ("log_write_p99", r.log.quantile(0.99) * ms, "ms", "the slow tail every committing application meets"),
        ("log_writes_per_second", r.log.rate, "1/s", "forced 4 KiB writes per second, one writer"),
        ("log_writes_per_second_concurrent", r.concurrent.rate, "1/s",
         f"{WRITERS} writers at once, each its own file; p50 {r.concurrent.quantile(0.5) * ms:.2f} ms, "
         f"p99 {r.concurrent.quantile(0.99) * ms:.2f} ms"),
        ("lock_round_trip_p50", r.locks.quantile(0.5) * ms, "ms",
         f"fcntl lock + unlock; p99 {r.locks.quantile(0.99) * ms:.2f} ms, {r.locks.count} round trips"),
        ("metadata_ops_per_second", r.metadata.rate, "1/s",
         f"create, write, fsync, rename, delete of a small file; p50 {r.metadata.quantile(0.5) * ms:.2f} ms"),
    ):
        measured = bool(r.log.latencies) if name.startswith("log_write_p") or name == "log_writes_per_second" \
            else True
        out.append(Check(name, verdict(name, value) if measured else FAIL, round(value, 3), unit,
                         detail if measured else "nothing could be measured"))
    return out


def estimate(r: Results) -> Dict[str, Optional[float]]:
    """The model (module docstring): one forced log write per commit."""
    p50 = r.log.quantile(0.5)
    replay = None
    rates = [x for x in (r.read_bytes_per_second, r.concurrent.rate * PAGE) if x > 0]
    if rates:
        replay = round((1024 ** 3) / min(rates), 1)
    return {
        "persistent_messages_per_second_one_app": round(1.0 / p50, 1) if p50 > 0 else None,
        "persistent_messages_per_second_concurrent": round(r.concurrent.rate, 1) if r.concurrent.rate else None,
        "replay_seconds_per_gib": replay,
    }


def render(path: str, checks: List[Check], est: Dict[str, Optional[float]], r: Results) -> str:
    lines = [f"storage check of {path}: {r.seconds:.0f} s, {r.bytes_written / 1024 ** 2:.1f} MiB written"
             + (f" (stopped early: {r.stopped_early})" if r.stopped_early else "")]
    for c in checks:
        value = "-" if c.value is None else (f"{c.value:.2f} {c.unit}" if c.unit == "ms" else
                                             f"{c.value:.0f} {c.unit}")
        lines.append(f"  {c.name:<34} {c.verdict:<5} {value:>12}  {c.detail}")
    one, many, replay = (est["persistent_messages_per_second_one_app"],
                         est["persistent_messages_per_second_concurrent"], est["replay_seconds_per_gib"])
    lines += ["", "what it means for MQ (model: one forced 4 KiB log write per commit):",
              f"  persistent messages per second, one committing application: {one if one is not None else '-'}",
              f"  persistent messages per second, {WRITERS} committing applications: "
              f"{many if many is not None else '-'}",
              f"  log replay after a failover: about {replay if replay is not None else '-'} s per GiB of log to "
              "replay (start_timeout must cover it)"]
    fails = sum(c.verdict == FAIL for c in checks)
    lines += ["", f"storage check: {len(checks)} checks, {fails} FAIL, {sum(c.verdict == WARN for c in checks)} WARN"]
    return "\n".join(lines)
