"""A second Docker engine: the next Debian suite's Docker 28 (with its own containerd 2.1 and
runc 1.3; install-system.sh unpacks them into a private root) on west-1 for this file. The
doctor reads it as an engine migrations are tested on, and a Redis moves east-1 (20.10) ->
west-1 (28.5) -> east-1 under the two ledgered clients, every acknowledged write kept.

Docker 28 leaves its data root's mount as it finds it (20.10 makes it shared); on this
machine's private / its containers' root mounts were then private, and CRIU could not restore
there a container dumped on a 20.10 node ("mnt-v2: Failed to copy sharing ... Invalid
argument": why this test once failed in full runs and passed alone). The lab now gives it a
shared data root, as systemd's shared / gives real nodes, and the doctor warns of a private
one ("mount-propagation")."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import (
    Ledgers,
    migrate,
    remove_everywhere,
    start_redis,
    whimbrel_cli,
)
from whimbrel.backends.lab import daemons, images
from whimbrel.backends.lab.topology import build_topology

pytestmark = pytest.mark.lab

NAME, PORT = "enginekv", 6393
NEXT = "west-1"


@pytest.fixture(scope="module")
def next_engine(lab: dict) -> Iterator[str]:
    """west-1's dockerd replaced by Docker 28 on a data root of its own, then put back."""
    node = build_topology().node(NEXT)
    daemons.stop_dockerd(node)
    try:
        daemons.start_dockerd(node, data_root=node.state_dir / "docker-next", next_engine=True)
        images.import_image(node.docker_host, images.redis_image())
        yield NEXT
    finally:
        daemons.stop_dockerd(node)
        daemons.start_dockerd(node)


def test_the_doctor_reads_docker_28_as_a_tested_engine_on_a_shared_root(
    lab: dict, next_engine: str
) -> None:
    done = whimbrel_cli(lab["config"], "doctor", next_engine, "--json")
    [report] = json.loads(done.stdout)["nodes"]
    checks = {c["name"]: c for c in report["checks"]}
    print(checks["docker"]["detail"], "|", checks["runc"]["detail"])
    assert checks["docker"]["detail"].startswith("Docker 28.")
    assert checks["runc"]["detail"].startswith("runc version 1.3.")
    assert checks["docker-version"]["ok"], checks["docker-version"]
    assert checks["mount-propagation"]["ok"], checks["mount-propagation"]
    assert done.returncode == 0, [c for c in report["checks"] if not c["ok"]]


def test_a_redis_moves_from_docker_20_to_28_and_back_with_every_acknowledged_write(
    lab: dict, next_engine: str
) -> None:
    start_redis("east-1", NAME, PORT)
    try:
        for src, dst in (("east-1", next_engine), (next_engine, "east-1")):
            with Ledgers(NAME, PORT, src, dst) as ledgers:
                code, events = migrate(lab["config"], f"{src}/{NAME}", dst)
                assert code == 0, events[-1].get("error")
                ledgers.assert_settled_on(dst)
            done = events[-1]
            print(
                f"{src} -> {dst}: {len(ledgers.follower.acked)} writes kept, "
                f"downtime {done['downtime_s']:.2f} s"
            )
    finally:
        remove_everywhere(NAME)
