"""Three simulated hosts of one Native HA queue manager (tests/sim/nha.py), each with its own storage (a FUSE
mount of its own), its own MQ simulator installation and its own ``mqguard run``; shared by the e2e tests and
``make bench``. No pytest here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from tests.peers import efs as efs_mod
from tests.peers.aws import FaultProxy
from tests.peers.imds import ImdsServer
from tests.support import Harness, free_port, kill_controllers

NAMES = ("az-a", "az-b", "az-c")
GRACE = 4.0
LIFECYCLE = "meta-data/autoscaling/target-lifecycle-state"


class Trio:
    """Three hosts of one Native HA queue manager QM1."""

    def __init__(self, tmp: Path) -> None:
        self.repl = {n: free_port() for n in NAMES}
        self.efs: Dict[str, efs_mod.FakeEfs] = {}
        self.h: Dict[str, Harness] = {}
        self.imds: Dict[str, ImdsServer] = {}
        for n in NAMES:
            (tmp / n).mkdir()
            self.efs[n] = efs_mod.FakeEfs(str(tmp / n)).mount()
            self.h[n] = Harness(tmp / n, self.efs[n], host=f"host-{n}")
            self.configure(n)

    def instances(self, override: Optional[Dict[str, int]] = None) -> str:
        ports = {**self.repl, **(override or {})}
        return ", ".join(f"{n}=127.0.0.1({ports[n]})" for n in NAMES)

    def configure(self, n: str, **sections: Dict[str, str]) -> None:
        base: Dict[str, Dict[str, str]] = {
            "queue_manager": {"ha": "native_ha", "instance_name": n, "stop_on_exit": "auto"},
            "storage": {"fstypes": efs_mod.FSTYPE},
            "native_ha": {"instances": self.instances(), "heartbeat_interval": "500ms", "heartbeat_timeout": "1s",
                          "quorum_wait": "1h"},
            "health": {"poll_interval": "0.5s", "grace_period": f"{GRACE:g}s", "restart_attempts": "5"},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.h[n].configure(**base)

    def with_aws(self, n: str, proxy: FaultProxy, instance_id: str) -> ImdsServer:
        """This host on "AWS": its own IMDS (its lifecycle state), Auto Scaling through the recording proxy in
        front of moto, a termination hook (the proxy answers the hook calls and records them)."""
        server = ImdsServer().start()
        server.paths[LIFECYCLE] = "InService"
        server.paths["meta-data/instance-id"] = instance_id
        self.imds[n] = server
        self.configure(n, aws={"imds_url": server.url, "endpoint_url": proxy.url, "termination_hook": "mq-terminate"},
                       health={"report": "autoscaling"})
        return server

    def start(self, *names: str) -> None:
        for n in names or NAMES:
            self.h[n].start()

    def role(self, n: str) -> str:
        status = self.status(n)
        nha = status.get("nha") if status else None
        return str(nha["role"]) if nha else "?"

    def status(self, n: str) -> Dict[str, object]:
        try:
            _, body = self.h[n].get("/status", timeout=3)
        except OSError:
            return {}
        try:
            doc = json.loads(body)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def code(self, n: str, path: str) -> int:
        try:
            return self.h[n].get(path, timeout=3)[0]
        except OSError:
            return 0

    def active(self) -> List[str]:
        return [n for n in NAMES if self.code(n, "/active") == 200]

    def settled(self) -> Optional[str]:
        """The one host serving /active while the other two answer /standby (in sync), or None."""
        active = self.active()
        if len(active) != 1:
            return None
        others = [n for n in NAMES if n != active[0]]
        return active[0] if all(self.code(n, "/standby") == 200 for n in others) else None

    def kill_mq(self, n: str) -> None:
        """kill -9 of this host's simulated MQ (and nothing else)."""
        kill_controllers(self.h[n].bindir)

    def cleanup(self) -> None:
        for n in NAMES:
            self.h[n].cleanup()
        for n in NAMES:
            kill_controllers(self.h[n].bindir)
            self.efs[n].unmount()
        for server in self.imds.values():
            server.stop()
