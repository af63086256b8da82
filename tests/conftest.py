"""Shared fixtures. Lab tests run against the real lab and never skip: without it they fail."""

from __future__ import annotations

import os

import pytest

from whimbrel.backends.lab import lab as lab_module


@pytest.fixture(scope="session")
def lab() -> dict:
    """The running lab's status; fails (never skips) when there is none."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, dockerd, CRIU): run `make test`")
    status = lab_module.status()
    if not status["up"]:
        pytest.fail("the lab is not up: `make test` brings it up (or `whimbrel lab up` as root)")
    unreachable = [n["name"] for n in status["nodes"] if not n["reachable"]]
    if unreachable:
        pytest.fail(f"lab nodes not answering SSH: {', '.join(unreachable)}")
    return status
