"""The RPM, built for real with rpmbuild, inspected with rpm and rpmlint,
installed into an empty root and used from there."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from mqguard import __version__
from tests.peers.aws import MotoAsg

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "rpm" / "mqguard.spec"

needs_rpm = pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed (Debian package rpm)")


def test_one_version_source_matches_spec_and_changelog() -> None:
    spec = SPEC.read_text()
    version = re.search(r"^Version:\s*(\S+)", spec, re.M)
    assert version and version.group(1) == __version__, "spec Version differs from mqguard.__version__"
    changelog = spec.split("%changelog", 1)[1]
    top = re.search(r"^\* .+ - (\S+)-(\S+)$", changelog, re.M)
    assert top and top.group(1) == __version__, "top %changelog entry differs from mqguard.__version__"
    man = (ROOT / "docs" / "mqguard.8").read_text()
    assert f'"mqguard {__version__}"' in man, "man page header carries the version"


def test_unit_file_has_the_contract_settings() -> None:
    unit = (ROOT / "systemd" / "mqguard.service").read_text()
    for line in ("Type=notify", "NotifyAccess=main", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "ExecStart=/usr/bin/mqguard run", "After=network-online.target remote-fs.target",
                 "User=mqm", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectSystem=strict",
                 "RemoveIPC=no", "LimitNOFILE=1024"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    watchdog = re.search(r"^WatchdogSec=(\d+)s$", unit, re.M)
    stop = re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.M)
    assert watchdog and int(watchdog.group(1)) > 5 + 5 + 15 + 2, "above one worst-case cycle at the defaults"
    assert stop and int(stop.group(1)) > 60 + 30 + 30, "above stop_timeout plus the escalation steps"
    # section 20: the queue manager is not mqguard's child any more
    assert not re.search(r"^KillMode=process", unit, re.M)
    assert not re.search(r"^ProcSubset=pid", unit, re.M), "would hide /proc/stat from the process metrics"


def test_queue_manager_unit_has_what_mq_needs() -> None:
    unit = (ROOT / "systemd" / "mq@.service").read_text()
    for line in ("Type=forking", "User=mqm", "ExecStart=/usr/libexec/mqguard/mq-unit start %I",
                 "ExecStop=/usr/libexec/mqguard/mq-unit stop %I", "LimitNOFILE=10240", "LimitNPROC=4096",
                 "RemoveIPC=no", "Restart=no", "Before=mqguard.service", "RequiresMountsFor=/var/mqm",
                 "TimeoutStartSec=infinity"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    stop = re.search(r"^TimeoutStopSec=(\d+)min$", unit, re.M)
    assert stop and int(stop.group(1)) * 60 > 60 + 30 + 30 + 2 * 15
    # MQ's setuid programs, Java and shared memory
    for unsafe in ("NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes", "RestrictSUIDSGID=yes", "RemoveIPC=yes",
                   "CapabilityBoundingSet=", "PrivateTmp=yes"):
        assert not re.search(rf"^{re.escape(unsafe)}$", unit, re.M), unsafe
    assert "[Install]" not in unit, "started by mqguard only, never enabled on its own"
    # MQ ignores SIGTERM: leftovers after ExecStop (or a crash) get SIGKILL at once, not a 20-minute wait (item 7)
    assert re.search(r"^KillSignal=SIGKILL$", unit, re.M) and re.search(r"^KillMode=control-group$", unit, re.M)


def test_prepare_unit_runs_mqs_creating_commands_outside_mqguards_sandbox() -> None:
    """Item 2: crtmqm's setgid directories and IBM's limits: a oneshot of its own, never mqguard's sandbox."""
    unit = (ROOT / "systemd" / "mq-prepare@.service").read_text()
    for line in ("Type=oneshot", "User=mqm", "ExecStart=/usr/libexec/mqguard/mq-unit prepare %I",
                 "SuccessExitStatus=10 11", "LimitNOFILE=10240", "LimitNPROC=4096", "RemoveIPC=no"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    for unsafe in ("RestrictSUIDSGID=yes", "NoNewPrivileges=yes", "LimitNOFILE=1024"):
        assert not re.search(rf"^{re.escape(unsafe)}$", unit, re.M), unsafe


def test_polkit_rule_grants_mq_units_only() -> None:
    rule = (ROOT / "packaging" / "polkit" / "50-mqguard.rules").read_text()
    assert 'subject.user !== "mqm"' in rule and "org.freedesktop.systemd1.manage-units" in rule
    pattern = re.search(r"/\^(.+?)\$/", rule)
    assert pattern
    allowed = re.compile(f"^{pattern.group(1)}$")  # this JS pattern means the same in Python
    assert allowed.match("mq@QM1.service") and allowed.match(r"mq@A-B\x25C.service")
    assert allowed.match("mq-prepare@QM1.service")
    for other in ("mqguard.service", "mq@.service", "sshd.service", "mq@x.service.d", "xmq@QM1.service",
                  "mq-other@QM1.service", "mq-prepare@.service"):
        assert not allowed.match(other), other


@pytest.fixture(scope="module")
def rpm_file() -> Path:
    res = subprocess.run(["make", "-s", "rpm"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    return next((ROOT / "build" / "rpmbuild" / "RPMS" / "noarch").glob(f"mqguard-{__version__}-1.noarch.rpm"))


@needs_rpm
def test_rpm_contents(rpm_file: Path) -> None:
    files = subprocess.run(["rpm", "-qpl", str(rpm_file)], capture_output=True, text=True, check=True).stdout.split()
    for path in ("/usr/bin/mqguard", "/usr/lib/systemd/system/mqguard.service", "/etc/mqguard/mqguard.conf",
                 "/etc/mqguard/conf.d", "/etc/mqguard/mqsc.d/10-example.mqsc", "/usr/share/man/man8/mqguard.8.gz",
                 "/usr/lib/mqguard/mqguard/cli/__init__.py", "/usr/lib/mqguard/boto3/__init__.py"):
        assert path in files, path
    assert any(f.endswith("/iam-policy.json") for f in files)
    configs = subprocess.run(["rpm", "-qpc", str(rpm_file)], capture_output=True, text=True, check=True).stdout.split()
    assert "/etc/mqguard/mqguard.conf" in configs
    dump = subprocess.run(["rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]", str(rpm_file)],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r"^cn /etc/mqguard/mqguard.conf$", dump, re.M), "%config(noreplace)"
    scripts = subprocess.run(["rpm", "-qp", "--scripts", str(rpm_file)], capture_output=True, text=True).stdout
    assert "try-restart mqguard.service" in scripts and "preset mqguard.service" in scripts


@needs_rpm
def test_rpm_requires_only_what_al2023_and_rhel9_have(rpm_file: Path) -> None:
    reqs = subprocess.run(["rpm", "-qpR", str(rpm_file)], capture_output=True, text=True, check=True).stdout
    allowed = re.compile(r"^(/bin/sh|/usr/bin/python3|python3 >= 3\.9|systemd|polkit|config\(mqguard\) = .*|rpmlib\(.*)$")
    unexpected = [r for r in reqs.splitlines() if r.strip() and not allowed.match(r.strip())]
    assert unexpected == [], unexpected


@needs_rpm
def test_rpmlint_leaves_only_the_explained_findings(rpm_file: Path) -> None:
    if shutil.which("rpmlint") is None:
        pytest.skip("rpmlint is not installed (Debian package rpmlint)")
    out = subprocess.run(["rpmlint", str(rpm_file)], capture_output=True, text=True).stdout
    found = {m.group(1) for m in re.finditer(r"^mqguard\.noarch: [EW]: (\S+)", out, re.M)}
    explained = {  # each one is explained in docs/deploying.md "rpmlint"
        "no-signature", "no-packager-tag", "no-manual-page-for-binary", "manpage-not-compressed",
        "invalid-license", "files-duplicate", "only-non-binary-in-usr-lib",
    }
    assert found <= explained, found - explained
    readme = (ROOT / "docs" / "deploying.md").read_text()
    for finding in found:
        assert f"`{finding}`" in readme, f"{finding} is not explained in docs/deploying.md"


@pytest.fixture(scope="module")
def installed_root(rpm_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("rpmroot")
    res = subprocess.run(["rpm", "-i", "--root", str(root), "--nodeps", "--noscripts", str(rpm_file)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    yield root


@needs_rpm
def test_vendored_libraries_all_run_on_python_39(installed_root: Path) -> None:
    lib = installed_root / "usr" / "lib" / "mqguard"
    infos = list(lib.glob("*.dist-info"))
    assert len(infos) >= 8
    for info in infos:
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text())
        spec = meta.get("Requires-Python", "")
        floors = re.findall(r">=\s*3\.(\d+)", spec)
        assert all(int(minor) <= 9 for minor in floors), f"{info.name}: Requires-Python {spec}"


@needs_rpm
def test_installed_files_alone_run_mqguard_and_talk_to_auto_scaling(installed_root: Path, moto: MotoAsg) -> None:
    """The installed tree, not the source tree: import paths are checked, and the
    pruned botocore still builds an Auto Scaling client that works against moto."""
    lib = installed_root / "usr" / "lib" / "mqguard"
    launcher = (installed_root / "usr" / "bin" / "mqguard").read_text()
    assert launcher.startswith("#!/usr/bin/python3 -sE") and 'sys.path.insert(0, "/usr/lib/mqguard")' in launcher
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    script = launcher.replace("/usr/lib/mqguard", str(lib)).split("\n", 1)[1]
    res = subprocess.run(["/usr/bin/python3", "-sE", "-c", script, "--version"], capture_output=True, text=True,
                         env=env, cwd="/")
    assert res.returncode == 0 and res.stdout.strip() == f"mqguard {__version__}", res.stderr
    # moto's backends are process-wide: use the session's server, never a second one
    probe = (
        f"import sys; sys.path.insert(0, {str(lib)!r}); import mqguard;"
        "from mqguard.aws.autoscaling import make_client;"
        f"c = make_client('us-east-1', {moto.url!r});"
        f"import boto3; assert mqguard.__file__.startswith({str(lib)!r}) and boto3.__file__.startswith({str(lib)!r});"
        f"c.set_instance_health(InstanceId={moto.instance_id!r}, HealthStatus='Unhealthy');"
        f"c.describe_auto_scaling_instances(InstanceIds=[{moto.instance_id!r}]);"
        "from mqguard.aws.autoscaling import OPERATIONS;"
        "assert sorted(c.meta.service_model.operation_names) == sorted(OPERATIONS), c.meta.service_model.operation_names;"
        "assert 'cryptography' not in sys.modules and 'OpenSSL' not in sys.modules;"
        "print('ok')"
    )
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    res = subprocess.run(["/usr/bin/python3", "-sE", "-c", probe], capture_output=True, text=True, env=env, cwd="/")
    assert res.stdout.strip() == "ok", res.stderr
    assert moto.health() == "Unhealthy"
    # every other service mqguard calls survives the pruning with exactly its operations: CloudFormation's
    # SignalResource (the kit's rolling updates wait for it) and the storage check's EFS and CloudWatch reads
    # (pruned away before: the packaged daemon could not signal, so every update would have rolled back)
    calls = textwrap.dedent(f"""
        import datetime as dt, sys
        sys.path.insert(0, {str(lib)!r})
        import boto3
        from mqguard.aws.autoscaling import make_client
        from mqguard.aws.calls import CALLS
        assert boto3.__file__.startswith({str(lib)!r})
        clients = {{s: make_client('us-east-1', {moto.url!r}, None, s) for s in CALLS}}
        for s, c in clients.items():
            assert sorted(c.meta.service_model.operation_names) == sorted(CALLS[s]), (s, c.meta.service_model)
        clients['efs'].describe_file_systems()
        now = dt.datetime.now(dt.timezone.utc)
        clients['cloudwatch'].get_metric_statistics(
            Namespace='AWS/EFS', MetricName='BurstCreditBalance', StartTime=now - dt.timedelta(minutes=5),
            EndTime=now, Period=60, Statistics=['Minimum'])
        # moto's server does not implement SignalResource (it answers 500): that the request is built from the
        # pruned model and sent is what this shows; the call itself is tested with botocore's Stubber
        try:
            clients['cloudformation'].signal_resource(StackName='no-such-stack', LogicalResourceId='Group',
                                                      UniqueId='i-1', Status='SUCCESS')
        except Exception as exc:  # moto's 500, which botocore cannot parse
            assert 'Unknown' not in type(exc).__name__, exc
        print('ok')
    """)
    res = subprocess.run(["/usr/bin/python3", "-sE", "-c", calls], capture_output=True, text=True, env=env, cwd="/")
    assert res.stdout.strip().endswith("ok"), res.stdout + res.stderr
    size = sum(f.stat().st_size for f in installed_root.rglob("*") if f.is_file() and "var/lib/rpm" not in str(f))
    print(f"\nFIGURE installed footprint: {size / 1e6:.1f} MB; rpm {os.path.getsize(next(ROOT.glob('build/rpmbuild/RPMS/noarch/*-1.noarch.rpm'))) / 1e6:.2f} MB",
          file=sys.stderr)


@needs_rpm
def test_the_source_tarball_builds_with_rpmbuild_alone_with_a_dist_tag(rpm_file: Path, tmp_path: Path) -> None:
    """Issue 27: `make rpm` worked only on Debian (apt, dpkg); a RHEL build host could not rebuild the package.
    `make dist` makes a self-contained tarball (the spec at its top, the libraries vendored); `rpmbuild -tb` on
    it, and `rpmbuild --rebuild` on the SRPM of `make srpm`, need nothing else, and take the host's dist tag."""
    dry = subprocess.run(["make", "-n", "rpm"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "apt-get" not in dry and "dpkg" not in dry, "make rpm needs python3's pip and rpmbuild, nothing Debian's"
    res = subprocess.run(["make", "-s", "srpm"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    srpm = next((ROOT / "build" / "rpmbuild" / "SRPMS").glob(f"mqguard-{__version__}-1.src.rpm"))
    tarball = ROOT / "build" / "dist" / f"mqguard-{__version__}.tar.gz"
    listing = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True, text=True, check=True).stdout
    assert f"mqguard-{__version__}/mqguard.spec" in listing.split(), "rpmbuild -ta/-tb finds the spec at the top"
    assert f"mqguard-{__version__}/lib/boto3/__init__.py" in listing.split(), "the libraries are in it"
    for how, args in (("tarball", ["-tb", str(tarball)]), ("srpm", ["--rebuild", str(srpm)])):
        top = tmp_path / how
        res = subprocess.run(["rpmbuild", *args, "--quiet", "--define", f"_topdir {top}", "--define", "dist .el9"],
                             capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin",
                                                                               "HOME": str(tmp_path)})
        assert res.returncode == 0, (how, res.stdout + res.stderr)
        built = list((top / "RPMS" / "noarch").glob("*.rpm"))
        assert [b.name for b in built] == [f"mqguard-{__version__}-1.el9.noarch.rpm"], (how, built)
