"""A second Docker engine: the next Debian suite's Docker 28 (with its own containerd 2.1 and
runc 1.3; install-system.sh unpacks them into a private root) on west-1 for this file. The
doctor reads it, and names it outside the range migrations are tested on: a Redis moved
east-1 (20.10) -> west-1 (28.5) -> east-1 under the ledgers passes when run alone (9 of 9
here, downtime 0.5-0.7 s, every write kept) and failed in both clean-clone runs of the whole
suite: CRIU's restore under runc 1.3.6 logged "rlimit: Can't setup RLIMIT_NOFILE for self:
Operation not permitted" (which CRIU 4.2 logs and goes on from) and last "cg: cgroupd: recv
req error" (which follows any failed restore); the errors between were not quoted then (they
are now, every one). Until the cause is found, 28.5 is not claimed (the migration test:
`git show 0d21026:tests/lab/test_second_engine.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import whimbrel_cli
from whimbrel.backends.lab import daemons, images
from whimbrel.backends.lab.topology import build_topology

pytestmark = pytest.mark.lab

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


def test_the_doctor_reads_docker_28_and_warns_it_is_untested(lab: dict, next_engine: str) -> None:
    done = whimbrel_cli(lab["config"], "doctor", next_engine, "--json")
    [report] = json.loads(done.stdout)["nodes"]
    checks = {c["name"]: c for c in report["checks"]}
    print(checks["docker"]["detail"], "|", checks["runc"]["detail"])
    assert checks["docker"]["detail"].startswith("Docker 28.")
    assert checks["runc"]["detail"].startswith("runc version 1.3.")
    assert not checks["docker-version"]["ok"] and not checks["docker-version"]["required"]
    assert done.returncode == 0, [c for c in report["checks"] if not c["ok"]]
