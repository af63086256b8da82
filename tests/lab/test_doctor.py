"""`whimbrel doctor` on the lab: every node ready; a node broken on purpose (CRIU off its PATH,
its engine without experimental features, its authorized_keys read-only) gets each failure
named with its remedy, in text and JSON, and migrate refuses it, quoting the doctor."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import running_on, whimbrel_cli
from whimbrel.backends.lab import daemons
from whimbrel.backends.lab.topology import build_topology

pytestmark = pytest.mark.lab

# sshd's own PATH for root, less /usr/local/sbin, where the lab's CRIU is.
PATH_WITHOUT_CRIU = "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BROKEN = {"criu", "experimental", "authorized-keys"}


def test_every_lab_node_passes_the_doctor(lab: dict) -> None:
    done = whimbrel_cli(lab["config"], "doctor", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    reports = json.loads(done.stdout)["nodes"]
    assert {r["node"] for r in reports} == {n["name"] for n in lab["nodes"]}
    for report in reports:
        failed = [c for c in report["checks"] if c["required"] and not c["ok"]]
        assert report["ready"] and not failed, failed
        names = {c["name"] for c in report["checks"]}
        assert {"ssh", "docker-forwarding", "criu-check", "authorized-keys"} <= names
        # The lab keeps CRIU's record of the kernel, as a node whose /run is a tmpfs does.
        assert next(c for c in report["checks"] if c["name"] == "criu-record")["ok"]
        # Each node shows it reaches every node of the other cluster.
        others = {n["name"] for n in lab["nodes"] if n["cluster"] != report["cluster"]}
        assert {n.removeprefix("link:") for n in names if n.startswith("link:")} == others
    text = whimbrel_cli(lab["config"], "doctor", "east-1")
    assert text.returncode == 0
    print(text.stdout)
    assert text.stdout.startswith("east-1 (east): ready")


@pytest.fixture
def broken_node(lab: dict) -> Iterator[str]:
    """west-2 (reached as root: sudo would give CRIU back its PATH) broken three ways."""
    node = build_topology().node("west-2")
    keys = node.authorized_keys
    made = not keys.exists()
    keys.touch()
    try:
        daemons.stop_dockerd(node)
        daemons.start_dockerd(node, experimental=False)
        daemons.restart_sshd(node, path=PATH_WITHOUT_CRIU)
        subprocess.run(["mount", "--bind", keys, keys], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", keys], check=True)
        yield node.name
    finally:
        subprocess.run(["umount", keys], check=False)
        if made:
            keys.unlink()
        daemons.restart_sshd(node)
        daemons.stop_dockerd(node)
        daemons.start_dockerd(node)


def test_a_broken_node_gets_each_failure_named_with_its_remedy_and_migrate_refuses_it(
    lab: dict, broken_node: str
) -> None:
    done = whimbrel_cli(lab["config"], "doctor", broken_node, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = json.loads(done.stdout)["nodes"]
    assert not report["ready"]
    failed = {c["name"]: c for c in report["checks"] if c["required"] and not c["ok"]}
    assert set(failed) == BROKEN, failed
    assert all(c["remedy"] for c in failed.values())
    assert failed["criu"]["detail"] == "no criu on PATH"
    assert failed["experimental"]["detail"] == "off"

    text = whimbrel_cli(lab["config"], "doctor", broken_node)
    assert text.returncode == 1
    print(text.stdout)
    assert text.stdout.startswith(f"{broken_node} (west): NOT READY (3 to fix)")
    for name in BROKEN:
        line = next(row for row in text.stdout.splitlines() if f" {name} " in row)
        assert line.split()[0] == "FAIL", line
    assert text.stdout.count("-> ") >= len(BROKEN)

    refused = whimbrel_cli(lab["config"], "migrate", "east-1/kv", "--to", broken_node, "--yes")
    assert refused.returncode == 1
    said = refused.stdout + refused.stderr
    print(said)
    assert f"{broken_node} is not ready for migrations: " in said
    quoted = said.split("not ready for migrations: ", 1)[1]
    assert quoted.split(":", 1)[0] in BROKEN
    assert running_on("kv") == ["east-1"]
