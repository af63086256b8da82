"""Fixtures of the lab's migration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import NAME, NODES, PORT, wait_until
from tests.labtools import ssh
from whimbrel.backends.lab.images import REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.workloads import load_redis


def start_redis(node: str, name: str, port: int) -> None:
    """A Redis holding 60 MB, host-networked on `node`."""
    address = NODES[node]
    ssh(address, f"docker run -d --name {name} --network host {REDIS_IMAGE} "
                 f"redis-server {REDIS_CONF} --port {port}")  # fmt: skip
    wait_until(lambda: _answers(address, port), timeout=20)
    load_redis(address, port, 60_000, value_size=1000)


def remove_everywhere(name: str) -> None:
    for address in NODES.values():
        ssh(address, f"docker rm -f {name} >/dev/null 2>&1; true")


@pytest.fixture
def redis(lab: dict) -> Iterator[str]:
    """The fault tests' Redis on east-1, made for one test and removed from every node after."""
    start_redis("east-1", NAME, PORT)
    yield NAME
    remove_everywhere(NAME)


def _answers(address: str, port: int) -> bool:
    try:
        load_redis(address, port, 1)
        return True
    except OSError:
        return False
