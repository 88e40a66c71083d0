"""A real Prometheus server (Debian package) on loopback, scraping one target."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional, Set

from tests.conftest import free_port


class Prometheus:
    def __init__(self, binary: str, tmp: Path, target: str, rules: Optional[Path] = None) -> None:
        self.port = free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            + (f"rule_files: ['{rules}']\n" if rules else "") +
            "scrape_configs:\n  - job_name: mqguard\n    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def api(self, path: str, **params: str) -> Dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return dict(json.loads(r.read()))

    def query(self, expr: str) -> Optional[float]:
        try:
            result = self.api("query", query=expr)["data"]["result"]
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> Set[str]:
        try:
            alerts = self.api("alerts")["data"]["alerts"]
        except OSError:
            return set()
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
