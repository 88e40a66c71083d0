"""The AMI's IMDS firewall (deploy/ami/files/imds-owner.nft), loaded by the real nft into a
network namespace of the test's own, with a real HTTP server on the metadata addresses:
root and mqm's UID get an answer, any other user is refused; the resolver's and the time
service's link-local addresses stay open to everyone; loading the file twice does not
double the rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

RULES = ROOT / "deploy" / "ami" / "files" / "imds-owner.nft"
MQM_UID = 936
AGENT_UID = 992  # an agent's user the image admits (45-imds-firewall.sh: IMDS_USERS, e.g. cwagent)
OTHER_UID = 65534

_why = ("nft is not installed (.ci/run installs nftables)" if not shutil.which("nft")
        else "needs root to make a network namespace" if os.geteuid() != 0
        else "unshare or setpriv is missing" if not (shutil.which("unshare") and shutil.which("setpriv")) else "")
pytestmark = pytest.mark.skipif(bool(_why), reason=_why)

PROBE = textwrap.dedent("""
    import socket, sys
    host = sys.argv[1]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, 8080))
        s.sendall(b"GET /latest/api/token HTTP/1.0\\r\\n\\r\\n")
        print("answered" if s.recv(100).startswith(b"HTTP/") else "silent")
    except OSError as exc:
        print(type(exc).__name__)
""")

INSIDE = textwrap.dedent("""
    set -eu
    ip link set lo up
    ip addr add 169.254.169.254/32 dev lo
    ip addr add 169.254.169.253/32 dev lo
    ip -6 addr add fd00:ec2::254/128 dev lo nodad
    nft -f "$RULES"
    nft -f "$RULES"
    pids=""
    trap 'kill $pids 2>/dev/null' EXIT
    for host in 169.254.169.254 169.254.169.253 fd00:ec2::254; do
        "$PY" -c 'import http.server, socket, sys
    class S(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers()
        def log_message(self, *a): pass
    S((sys.argv[1], 8080), H).serve_forever()' "$host" </dev/null >/dev/null 2>&1 &
        pids="$pids $!"
    done
    sleep 1
    for host in 169.254.169.254 169.254.169.253 fd00:ec2::254; do
        for uid in 0 $MQM_UID $AGENT_UID $OTHER_UID; do
            echo "$host $uid $(setpriv --reuid $uid --regid $uid --clear-groups "$PY" -c "$PROBE" "$host")"
        done
    done
    echo "rules $(nft list table inet mqguard_imds | grep -c 'reject with tcp reset')"
""")


def test_only_root_and_mqm_reach_instance_metadata(tmp_path: Path) -> None:
    rules = tmp_path / "imds-owner.nft"
    # as 45-imds-firewall.sh renders it: mqm's UID, then each IMDS_USERS user's
    rules.write_text(RULES.read_text().replace("@IMDS_UIDS@", f"{MQM_UID}, {AGENT_UID}"))
    env = {**os.environ, "RULES": str(rules), "PY": sys.executable, "PROBE": PROBE, "MQM_UID": str(MQM_UID),
           "AGENT_UID": str(AGENT_UID), "OTHER_UID": str(OTHER_UID)}
    res = subprocess.run(["unshare", "--net", "sh", "-c", INSIDE], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    seen = {tuple(line.split()[:2]): line.split()[2] for line in res.stdout.splitlines() if line.count(" ") == 2}
    print("\n" + res.stdout)
    for host in ("169.254.169.254", "fd00:ec2::254"):
        assert seen[(host, "0")] == "answered"
        assert seen[(host, str(MQM_UID))] == "answered"
        assert seen[(host, str(AGENT_UID))] == "answered", "the CloudWatch agent's user needs the role's credentials"
        assert seen[(host, str(OTHER_UID))] == "ConnectionRefusedError", "another user must not reach IMDS"
    for uid in ("0", str(MQM_UID), str(AGENT_UID), str(OTHER_UID)):
        assert seen[("169.254.169.253", uid)] == "answered", "the Amazon DNS resolver stays open to all"
    assert "rules 2" in res.stdout, "loading the file twice replaces the table"
