"""``mqguard preflight --storage``: the mounted storage measured the way IBM MQ uses it.

MQ's recovery log is written in 4 KiB pages, each made durable before the commit that needs it returns (a forced
write); a multi-instance pair lives on ``fcntl`` locks; queue files and the log's extents are created, written,
synced, renamed and deleted. Each is measured for a share of ``--seconds`` on files of the check's own, in a
directory of its own under ``<storage.path>/.mqguard/storage-check/`` (opened like the rest of ``.mqguard``:
no symbolic link followed), never touching MQ's files, at most ``MAX_BYTES`` written, and removed on every exit
path, an interrupt included.

Next to a live queue manager it competes with MQ for the file system for those seconds: the log writes of one
and of ``WRITERS`` concurrent writers, that is ``WRITERS + 1`` synchronous 4 KiB writes in flight at most.

The estimates use one documented model (docs/real-mq.md, "Is my EFS fast enough?"): a committing application
waits for one forced log write per commit, so one application commits at most ``1 / p50`` persistent messages
per second; several applications share the log's writes (MQ groups their commits), which the concurrent writers'
rate approximates; a log replay reads the log and rewrites what it touched, which the read-back and the
concurrent write rate bound.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from mqguard.efs.statedir import open_sub_dir
from mqguard.preflight.stall import Liveness

CHECK_DIR = "storage-check"
PAGE = 4096
WRITERS = 4  # concurrent log writers (committing applications)
# An operation that has not returned for this long means the storage stopped answering (a hung EFS: NFS's hard
# mount retries for ever); the command says so and exits instead of hanging. EFS mounts retry after 60 s
# (timeo=600), so a healthy but slow answer comes back well before this.
STALL_SECONDS = 30.0
MAX_BYTES = 256 * 1024 * 1024
MAX_SAMPLES = 50_000  # latencies kept per kind of operation (a reservoir; every operation is counted)
DEFAULT_SECONDS = 30.0
MAX_SECONDS = 300.0
PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

# The phases' shares of --seconds: the log's pattern first, the rest after it.
SHARES = {"log": 0.35, "concurrent": 0.25, "locks": 0.15, "metadata": 0.2, "read": 0.05}

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


class Budget:
    """Time and bytes for the whole check; each phase gets its share of the time."""

    def __init__(self, seconds: float, max_bytes: int, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self.written = 0
        self.began = clock()

    def left_bytes(self) -> int:
        return self.max_bytes - self.written

    def add(self, n: int) -> None:
        self.written += n


def _open_new(dfd: int, name: str) -> int:
    return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)


class StorageCheck:
    """One run in one directory of its own; ``run`` measures, ``close`` removes everything it made."""

    def __init__(self, storage_path: str, owners: FrozenSet[int], seconds: float = DEFAULT_SECONDS,
                 max_bytes: int = MAX_BYTES, clock: Callable[[], float] = time.monotonic,
                 progress: Callable[[str, float], None] = lambda phase, left: None,
                 mount_point: bool = True, writers: int = WRITERS, liveness: Optional[Liveness] = None) -> None:
        self.storage_path = storage_path
        self.live = liveness or Liveness(clock)
        shown = progress

        def progress_and_answer(phase: str, left: float) -> None:
            self.live.answer(phase)
            shown(phase, left)

        progress = progress_and_answer
        self.owners = owners
        self.seconds = min(max(seconds, 1.0), MAX_SECONDS)
        self.budget = Budget(self.seconds, max_bytes, clock)
        self.clock = clock
        self.progress = progress
        self.progress_only = shown  # the concurrent phase's writers answer for themselves
        self.writers = writers
        self.name = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        parent = open_sub_dir(storage_path, owners, CHECK_DIR, create=True, mount_point=mount_point)
        try:
            os.mkdir(self.name, 0o700, dir_fd=parent)
            self.dfd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except BaseException:
            os.close(parent)
            raise
        self.parent = parent
        self.files: List[str] = []

    # ------------------------------------------------------------------ the phases
    def run(self) -> Results:
        r = Results()
        start = self.clock()
        self.live.answer("log writes, one writer")
        self._log(r)
        self.live.answer("reading the log back")
        self._read(r)
        self.live.answer(f"log writes, {self.writers} writers at once")
        self._concurrent(r)
        self.live.answer("file locks")
        self._locks(r)
        self.live.answer("metadata (create, write, fsync, rename, delete)")
        self._metadata(r)
        self.live.answer("removing the check's files")
        r.bytes_written = self.budget.written
        r.seconds = self.clock() - start
        return r

    def _deadline(self, phase: str) -> float:
        return self.clock() + self.seconds * SHARES[phase]

    def _new_file(self, name: str) -> int:
        self.files.append(name)
        return _open_new(self.dfd, name)

    def _log(self, r: Results) -> None:
        """One writer: 4 KiB appended, then fdatasync, before the next (what fio --fdatasync=1 does)."""
        end = self._deadline("log")
        fd = self._new_file("log-1")
        page = os.urandom(PAGE)
        began = self.clock()
        try:
            while self.clock() < end:
                if self.budget.left_bytes() < PAGE:
                    r.stopped_early = f"the {self.budget.max_bytes // (1024 * 1024)} MiB written budget"
                    break
                t0 = self.clock()
                os.write(fd, page)
                os.fdatasync(fd)
                r.log.add(self.clock() - t0)
                self.budget.add(PAGE)
                self.progress("log writes, one writer", end - self.clock())
        finally:
            r.log.elapsed = self.clock() - began
            os.close(fd)

    def _read(self, r: Results) -> None:
        """The log read back in 1 MiB reads (a replay reads the log), its pages dropped from the cache first."""
        end = self._deadline("read")
        fd = os.open("log-1", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dfd)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            done, t0 = 0, self.clock()
            while self.clock() < end:
                chunk = os.read(fd, 1024 * 1024)
                if not chunk:
                    break
                done += len(chunk)
                self.live.answer("reading the log back")
            took = self.clock() - t0
            r.read_bytes_per_second = done / took if took > 0 and done else 0.0
        finally:
            os.close(fd)

    def _concurrent(self, r: Results) -> None:
        """Several writers at once, each on its own file (committing applications sharing the file system)."""
        end = self._deadline("concurrent")
        lock = threading.Lock()
        page = os.urandom(PAGE)
        fds = [self._new_file(f"log-c{i}") for i in range(self.writers)]
        errors: List[BaseException] = []

        def writer(fd: int) -> None:
            try:
                while self.clock() < end:
                    with lock:
                        if self.budget.left_bytes() < PAGE:
                            return
                        self.budget.add(PAGE)
                    t0 = self.clock()
                    os.write(fd, page)
                    os.fdatasync(fd)
                    took = self.clock() - t0
                    with lock:
                        r.concurrent.add(took)
                    self.live.answer(f"log writes, {self.writers} writers at once")
            except BaseException as exc:  # reported by the caller
                errors.append(exc)

        began = self.clock()
        threads = [threading.Thread(target=writer, args=(fd,), name="storage-writer", daemon=True) for fd in fds]
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                self.progress_only(f"log writes, {self.writers} writers at once", end - self.clock())
                for t in threads:
                    t.join(0.2)
        finally:
            r.concurrent.elapsed = self.clock() - began
            for fd in fds:
                os.close(fd)
        if errors:
            raise errors[0]

    def _locks(self, r: Results) -> None:
        """fcntl lock and unlock of a byte range (what MQ's file locks and a multi-instance pair rely on)."""
        end = self._deadline("locks")
        fd = self._new_file("lock")
        began = self.clock()
        try:
            while self.clock() < end:
                t0 = self.clock()
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(fd, fcntl.LOCK_UN)
                r.locks.add(self.clock() - t0)
                self.progress("file locks", end - self.clock())
        finally:
            r.locks.elapsed = self.clock() - began
            os.close(fd)

    def _metadata(self, r: Results) -> None:
        """A small file created, written, synced, renamed and deleted: one operation."""
        end = self._deadline("metadata")
        began = self.clock()
        n = 0
        try:
            while self.clock() < end:
                a, b = f"meta-{n}", f"meta-{n}.renamed"
                t0 = self.clock()
                fd = _open_new(self.dfd, a)
                try:
                    os.write(fd, b"x" * 512)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(a, b, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
                os.unlink(b, dir_fd=self.dfd)
                r.metadata.add(self.clock() - t0)
                n += 1
                self.progress("metadata (create, write, fsync, rename, delete)", end - self.clock())
        finally:
            r.metadata.elapsed = self.clock() - began

    # ------------------------------------------------------------------ cleanup
    def close(self) -> None:
        """Remove every file this run made and its directory (whatever state it was left in)."""
        try:
            for entry in os.listdir(self.dfd):
                try:
                    os.unlink(entry, dir_fd=self.dfd)
                except OSError:
                    pass
        finally:
            os.close(self.dfd)
            try:
                os.rmdir(self.name, dir_fd=self.parent)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            finally:
                os.close(self.parent)


# ---------------------------------------------------------------------- verdicts and estimates

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


# ---------------------------------------------------------------------- the command

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
