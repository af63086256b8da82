"""Fixtures of the lab's migration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import EAST1, NAME, PORT, WEST1, wait_until
from tests.labtools import ssh
from whimbrel.backends.lab.images import REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.workloads import load_redis


@pytest.fixture
def redis(lab: dict) -> Iterator[str]:
    """A Redis holding 60 MB on east-1, made for one test and removed from every node after."""
    ssh(EAST1, f"docker run -d --name {NAME} --network host {REDIS_IMAGE} "
               f"redis-server {REDIS_CONF} --port {PORT}")  # fmt: skip
    wait_until(lambda: _answers(EAST1), timeout=20)
    load_redis(EAST1, PORT, 60_000, value_size=1000)
    yield NAME
    for address in (EAST1, WEST1):
        ssh(address, f"docker rm -f {NAME} >/dev/null 2>&1; true")


def _answers(address: str) -> bool:
    try:
        load_redis(address, PORT, 1)
        return True
    except OSError:
        return False
