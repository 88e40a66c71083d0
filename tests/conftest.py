"""Shared fixtures: the MQ simulator, a FUSE "EFS", IMDSv2, moto, and a daemon harness (tests/support.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.peers import efs as efs_mod
from tests.peers.aws import FaultProxy, MotoAsg
from tests.peers.imds import ImdsServer
from tests.support import ROOT, Harness, free_port, kill_controllers, started_from, wait_until

__all__ = ["ROOT", "Harness", "free_port", "kill_controllers", "started_from", "wait_until"]


@pytest.fixture
def efs(tmp_path: Path) -> Iterator[efs_mod.FakeEfs]:
    why = efs_mod.available()
    if why:
        pytest.skip(f"FUSE EFS stand-in unavailable: {why}")
    fs = efs_mod.FakeEfs(str(tmp_path)).mount()
    try:
        yield fs
    finally:
        fs.unmount()


@pytest.fixture
def imds() -> Iterator[ImdsServer]:
    server = ImdsServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoAsg]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = MotoAsg().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_session: MotoAsg) -> Iterator[MotoAsg]:
    """The session's moto server, with the instance set Healthy again and no record of an earlier create (each
    test's EFS is new: the group's tag from another test would make it refuse to create, as it should)."""
    asg = moto_session.client("autoscaling")
    asg.set_instance_health(InstanceId=moto_session.instance_id, HealthStatus="Healthy")
    moto_session.forget_creates()
    yield moto_session
    moto_session.forget_creates()


@pytest.fixture
def aws(moto: MotoAsg, imds: ImdsServer) -> Iterator[FaultProxy]:
    """A pass-through proxy in front of moto (it answers the lifecycle-hook calls moto lacks and counts every
    call), with IMDS serving moto's instance id."""
    imds.paths["meta-data/instance-id"] = moto.instance_id
    proxy = FaultProxy(moto.url, []).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def harness(tmp_path: Path, efs: efs_mod.FakeEfs) -> Iterator[Harness]:
    h = Harness(tmp_path, efs)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Harness]:
    """The simulator on a plain directory (no FUSE), for command-level tests."""

    class _Plain:
        path = str(tmp_path / "shared")

        def thaw(self) -> None:
            pass

    os.makedirs(_Plain.path, exist_ok=True)
    h = Harness(tmp_path, _Plain())  # type: ignore[arg-type]
    try:
        yield h
    finally:
        h.cleanup()
