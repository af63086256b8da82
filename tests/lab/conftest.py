"""Fixtures of the lab's migration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import NAME, PORT, remove_everywhere, start_redis


@pytest.fixture
def redis(lab: dict) -> Iterator[str]:
    """The fault tests' Redis on east-1, made for one test and removed from every node after."""
    start_redis("east-1", NAME, PORT)
    yield NAME
    remove_everywhere(NAME)
