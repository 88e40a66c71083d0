"""Fixtures of the kit's tests: moto's session server with the network load balancer patches (tests/deploy/kit.py),
for every deploy test module alike."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.deploy import kit
from tests.peers.aws import MotoAsg


@pytest.fixture(scope="module")
def moto(moto_session: MotoAsg) -> Iterator[MotoAsg]:
    undo = kit.patch_moto_nlb(moto_session.url)
    try:
        yield moto_session
    finally:
        undo()
