#!/usr/bin/env python3
"""make bench: latency of /metrics and /healthz from a real `mqguard run`, and its memory.

Runs the daemon against the MQ simulator and a FUSE "EFS", then sends N
sequential keep-alive requests per endpoint with EFS healthy, with EFS frozen
(bindfs SIGSTOPped, as a dead NFS server), and with 100 abusive clients
connected (50 dripping their headers a byte at a time, 25 scraping /metrics
back to back, 25 sending oversized headers in a loop). Prints median and p99
per case, the frozen/healthy ratio, and the daemon's RSS (report = log and
report = autoscaling). Target: p99 under 10 ms in every case. Then the storage
check (`mqguard preflight --storage`): its own CPU and peak RSS, on a local
directory and on a FUSE storage with 2 ms per fdatasync, and its log-write
figures next to fio's on the same mount.
Loopback only; bounded; everything is stopped and unmounted at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers.aws import MotoAsg  # noqa: E402
from tests.peers.efs import FakeEfs  # noqa: E402
from tests.peers.imds import ImdsServer  # noqa: E402
from tests.peers.slowfs import SlowFs, fio_log_write_ms  # noqa: E402
from tests.peers.slowfs import available as slowfs_available  # noqa: E402
from tests.support import Harness, free_port  # noqa: E402

TARGET_P99_MS = 10.0
TARGET_RSS_MIB = 35.0


def measure(port: int, path: str, n: int) -> List[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    samples = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            samples.append((time.perf_counter() - start) * 1000)
            if resp.status not in (200, 503):
                raise SystemExit(f"{path} answered {resp.status}")
    finally:
        conn.close()
    return samples


def abusers(port: int, stop: threading.Event) -> List[threading.Thread]:
    """100 hostile clients on their own threads, each bounded by ``stop``."""

    def drip() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\n")
                    while not stop.wait(0.1):
                        s.sendall(b"X")
            except OSError:
                stop.wait(0.05)

    def scrape() -> None:
        while not stop.is_set():
            try:
                measure(port, "/metrics", 50)
            except (OSError, http.client.HTTPException, SystemExit):
                stop.wait(0.05)

    def oversize() -> None:
        junk = b"X-Junk: " + b"a" * 4000 + b"\r\n"
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\n")
                    for _ in range(1000):
                        s.sendall(junk)
            except OSError:
                stop.wait(0.01)

    kinds: List[Callable[[], None]] = [drip] * 50 + [scrape] * 25 + [oversize] * 25
    threads = [threading.Thread(target=k, daemon=True) for k in kinds]
    for t in threads:
        t.start()
    return threads


def run_abusers(port: int, seconds: float) -> None:
    stop = threading.Event()
    threads = abusers(port, stop)
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(10)


def pipelining_flood(port: int, seconds: float, clients: int = 600) -> None:
    """Issue 16 item 5: clients that pipeline /metrics and never read their answers, reconnecting when closed."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, clients * 2 + 64)), hard))
    burst = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 200
    socks: List[socket.socket] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        socks = [s for s in socks if s.fileno() >= 0]
        while len(socks) < clients and time.monotonic() < end:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                s.connect(("127.0.0.1", port))
                s.setblocking(False)
                s.send(burst[:8000])
            except OSError:
                s.close()
                continue
            socks.append(s)
        for s in list(socks):  # closed by the server (evicted): reconnect on the next round
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    s.close()
            except BlockingIOError:
                pass
            except OSError:
                s.close()
        time.sleep(0.05)
    for s in socks:
        s.close()


def burn(seconds: float) -> None:
    """Keep one CPU busy (another tenant of a shared machine)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def fresh_checks(port: int, path: str, n: int, timeout: float = 2.0) -> List[float]:
    """n checks as a load balancer makes them: a new connection each, one request, closed; -1 for no answer
    within ``timeout``."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            out.append((time.perf_counter() - started) * 1000)
        except OSError:
            out.append(-1.0)
        finally:
            conn.close()
    return out


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def p99(samples: List[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per endpoint and case (>= 1000)")
    args = parser.parse_args()
    n = max(1000, args.n)
    tmp = Path(tempfile.mkdtemp(prefix="mqguard-bench-"))
    efs = FakeEfs(str(tmp)).mount()
    h = Harness(tmp, efs)
    port = free_port()
    h.configure(metrics={"listen": f"127.0.0.1:{port}"}, logging={"level": "warning"},
                storage={"probe_timeout": "500ms"}, health={"grace_period": "10m"})
    results: Dict[Tuple[str, str], List[float]] = {}
    try:
        h.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        time.sleep(3)
        if h.proc is None:
            raise SystemExit("mqguard did not start")
        rss = rss_mib(h.proc.pid)
        for case in ("EFS healthy", "EFS frozen"):
            if case == "EFS frozen":
                efs.freeze()
                time.sleep(2)  # let a few cycles see the hang
            for path in ("/metrics", "/healthz"):
                measure(port, path, 50)  # warm-up
                results[(path, case)] = measure(port, path, n)
        efs.thaw()
        # the abusers run in their own process: in this one they would steal the measuring thread's GIL
        crowd = multiprocessing.Process(target=run_abusers, args=(port, 120.0), daemon=True)
        crowd.start()
        try:
            time.sleep(2)
            results[("/healthz", "100 abusive clients")] = measure(port, "/healthz", n)
            rss_abused = rss_mib(h.proc.pid)
        finally:
            crowd.terminate()
            crowd.join(10)
        flood = multiprocessing.Process(target=pipelining_flood, args=(port, 60.0), daemon=True)
        flood.start()
        try:
            time.sleep(3)
            checks = fresh_checks(port, "/active", 500)
        finally:
            flood.terminate()
            flood.join(10)
        # a harsher flood (three processes of 600 clients) with one CPU kept busy by another process: a busy
        # machine (seen from outside at 97.9-98.7 % within 1 s before the eviction order and backlog changed)
        burner = multiprocessing.Process(target=burn, args=(120.0,), daemon=True)
        floods = [multiprocessing.Process(target=pipelining_flood, args=(port, 90.0), daemon=True) for _ in range(3)]
        burner.start()
        for flood in floods:
            flood.start()
        try:
            time.sleep(3)
            busy_checks = fresh_checks(port, "/active", 1000, timeout=1.0)
        finally:
            for proc in [*floods, burner]:
                proc.terminate()
                proc.join(10)
    finally:
        efs.thaw()
        if h.proc is not None and h.proc.poll() is None:
            h.stop()
        h.cleanup()
        efs.unmount()
    print(f"\nmqguard endpoint latency, {n} sequential keep-alive requests per row (loopback)\n")
    print(f"| endpoint | case | median ms | p99 ms | max ms | p99 target {TARGET_P99_MS:g} ms |")
    print("|---|---|---|---|---|---|")
    ok = True
    for (path, case), s in results.items():
        good = p99(s) < TARGET_P99_MS
        ok &= good
        print(f"| {path} | {case} | {statistics.median(s):.2f} | {p99(s):.2f} | {max(s):.2f} | "
              f"{'met' if good else 'MISSED'} |")
    for path in ("/metrics", "/healthz"):
        ratio = statistics.median(results[(path, "EFS frozen")]) / statistics.median(results[(path, "EFS healthy")])
        print(f"\n{path}: median frozen/healthy ratio {ratio:.2f}")
    abused = statistics.median(results[("/healthz", "100 abusive clients")])
    healthy = statistics.median(results[("/healthz", "EFS healthy")])
    print(f"/healthz: median abused/healthy ratio {abused / healthy:.2f}")
    fast = sum(1 for ms in checks if 0 <= ms <= 50)
    answered = sum(1 for ms in checks if ms >= 0)
    print(f"\n/active during 600 never-reading pipelining clients, 500 fresh-connection checks: {answered} answered, "
          f"{fast / len(checks):.1%} within 50 ms (target 99 %: {'met' if fast >= 0.99 * len(checks) else 'MISSED'}); "
          f"median {statistics.median([m for m in checks if m >= 0] or [0]):.2f} ms")
    within = sum(1 for ms in busy_checks if 0 <= ms <= 1000)
    met = within >= 0.99 * len(busy_checks)
    ok &= met
    print(f"/active during 1,800 such clients with one CPU kept busy, {len(busy_checks)} fresh-connection checks: "
          f"{within / len(busy_checks):.1%} answered within 1 s (target 99 %: {'met' if met else 'MISSED'}); "
          f"median {statistics.median([m for m in busy_checks if m >= 0] or [0]):.2f} ms, "
          f"p99 {p99([m if m >= 0 else 1e9 for m in busy_checks]):.0f} ms")
    print(f"\nRSS of mqguard run (report = log): {rss:.1f} MiB steady, {rss_abused:.1f} MiB with 100 abusive clients")
    packaged = packaged_rss()
    if packaged is None:
        print("RSS as packaged: skipped (no build/src/*/lib: run make rpm)")
    else:
        good = packaged <= TARGET_RSS_MIB  # reported, not part of the exit code (README "Left to do")
        print(f"RSS of mqguard run as packaged (system python3 -sE, vendored libraries, report = autoscaling "
              f"against moto + IMDSv2, after the preflight): {packaged:.1f} MiB "
              f"(target {TARGET_RSS_MIB:g} MiB: {'met' if good else 'MISSED'})")
    storage_bench()
    return 0 if ok else 1


def storage_check(path: Path, seconds: int) -> Tuple[Dict[str, Any], float, float, float]:
    """One `mqguard preflight --storage --json` run: (its JSON, CPU seconds, peak RSS MiB, wall seconds)."""
    out = path.parent / f"{path.name}-check.json"
    began = time.monotonic()
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mqguard", "preflight", "--storage", "--path", str(path),
                                 "--seconds", str(seconds), "--json"], stdout=fh, stderr=subprocess.DEVNULL,
                                cwd=ROOT)
        # the peak RSS since exec (VmHWM): wait4's ru_maxrss would count the fork of this big process before exec
        peak = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - began
    if proc.returncode not in (0, 1):
        raise SystemExit(f"storage check on {path} exited {proc.returncode}")
    return json.loads(out.read_text()), usage.ru_utime + usage.ru_stime, peak, wall


def storage_bench(seconds: int = 20, injected: float = 0.002) -> None:
    print(f"\nstorage check (mqguard preflight --storage --seconds {seconds}), its own cost and its agreement with fio")
    print("\n| storage | CPU s | CPU % of one core | peak RSS MiB | log write p50 ms | p99 ms | writes/s | "
          "fio p50 ms | fio p99 ms | fio writes/s | p50 ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="mqguard-bench-storage-"))
    local = tmp / "local"
    local.mkdir()
    targets: List[Tuple[str, Path]] = [("local directory", local)]
    slow: Optional[SlowFs] = None
    why = slowfs_available()
    if not why:
        slow = SlowFs(tmp, injected).start()
        targets.append((f"FUSE, {injected * 1000:g} ms per fdatasync", slow.path))
    try:
        for name, path in targets:
            doc, cpu, rss, wall = storage_check(path, seconds)
            got = {c["name"]: c["value"] for c in doc["checks"]}
            fio = fio_log_write_ms(path) if shutil.which("fio") else None
            row = (f"| {name} | {cpu:.1f} | {100 * cpu / wall:.0f} | {rss:.1f} | {got['log_write_p50']:.2f} | "
                   f"{got['log_write_p99']:.2f} | {got['log_writes_per_second']:.0f} | ")
            if fio is None:
                row += "fio not installed | | | |"
            else:
                row += (f"{fio['p50']:.2f} | {fio['p99']:.2f} | {fio['iops']:.0f} | "
                        f"{got['log_write_p50'] / fio['p50']:.3f} |")
            print(row)
    finally:
        if slow is not None:
            slow.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if why:
        print(f"(the FUSE row was skipped: {why})")


def packaged_rss() -> Optional[float]:
    """Steady RSS of the daemon as the RPM runs it, with the Auto Scaling report path loaded."""
    libs = sorted(ROOT.glob("build/src/mqguard-*/lib"))
    if not libs or not Path("/usr/bin/python3").exists():
        return None
    # as the RPM's %post does: bytecode made by the system Python at install
    subprocess.run(["/usr/bin/python3", "-m", "compileall", "-q", str(libs[-1])], check=True, capture_output=True)
    launcher = (ROOT / "packaging" / "rpm" / "mqguard-launcher").read_text().split("\n", 1)[1]
    launcher = launcher.replace("/usr/lib/mqguard", str(libs[-1]))
    tmp = Path(tempfile.mkdtemp(prefix="mqguard-bench-rss-"))
    efs = FakeEfs(str(tmp)).mount()
    moto = MotoAsg().start()
    imds = ImdsServer(instance_id=moto.instance_id).start()
    h = Harness(tmp, efs)
    h.command = ["/usr/bin/python3", "-sE", "-c", launcher]
    h.configure(health={"report": "autoscaling", "grace_period": "10m"}, logging={"level": "info"},
                aws={"endpoint_url": moto.url, "imds_url": imds.url, "region": "us-east-1"})
    try:
        h.start()
        h.wait_log(r"Auto Scaling reachable", timeout=60)  # the preflight made its boto3 client
        time.sleep(5)  # steady: cycles running
        if h.proc is None or h.proc.poll() is not None:
            raise SystemExit(f"packaged mqguard exited:\n{h.log_text()}")
        samples = []
        for _ in range(5):
            samples.append(rss_mib(h.proc.pid))
            time.sleep(1)
        return statistics.median(samples)
    finally:
        if h.proc is not None and h.proc.poll() is None:
            h.stop()
        h.cleanup()
        efs.unmount()
        imds.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
