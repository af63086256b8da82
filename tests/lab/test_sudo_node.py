"""The lab's node reached as a normal user with passwordless sudo (east-2, as `wbop`, become =
"sudo"): a Redis moved off it and back onto it under two ledgered clients loses no
acknowledged write and leaves nothing behind, the short-lived keys going through the user's
own ~/.ssh/authorized_keys; a sudo that asks for a password is named by the doctor, with
its remedy, and migrate refuses the node."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.lab.migration_tools import (
    Ledgers,
    migrate,
    remove_everywhere,
    running_on,
    start_redis,
    whimbrel_cli,
)
from whimbrel.backends.lab import sudo_user
from whimbrel.backends.lab.topology import SUDO_USER, build_topology

pytestmark = pytest.mark.lab

SUDO_NODE = "east-2"
NAME, PORT = "sudokv", 6392


@pytest.fixture
def redis_on_sudo_node(lab: dict) -> Iterator[str]:
    assert build_topology().node(SUDO_NODE).sudo_user == SUDO_USER
    start_redis(SUDO_NODE, NAME, PORT)
    yield NAME
    remove_everywhere(NAME)


def test_a_redis_moves_off_the_sudo_node_and_back_with_every_acknowledged_write(
    lab: dict, redis_on_sudo_node: str
) -> None:
    keys = build_topology().node(SUDO_NODE).authorized_keys
    for src, dst in ((SUDO_NODE, "west-1"), ("west-1", SUDO_NODE)):
        with Ledgers(NAME, PORT, src, dst) as ledgers:
            code, events = migrate(lab["config"], f"{src}/{NAME}", dst)
            assert code == 0, events[-1].get("error")
            ledgers.assert_settled_on(dst)
        print(f"{src} -> {dst}: {len(ledgers.follower.acked)} writes kept")
    # The user's keys file is still the user's (sshd reads it as the user): a link into the
    # node worked through it, and it holds no short-lived key any more.
    assert os.stat(keys).st_uid == os.stat(keys.parent).st_uid != 0
    assert "whimbrel-ephemeral" not in keys.read_text()


@pytest.fixture
def sudo_asks_a_password(lab: dict) -> Iterator[None]:
    sudo_user.allow(SUDO_USER, password=True)
    try:
        yield
    finally:
        sudo_user.allow(SUDO_USER, password=False)


def test_a_sudo_asking_for_a_password_is_named_and_migrate_refuses_the_node(
    lab: dict, sudo_asks_a_password: None
) -> None:
    done = whimbrel_cli(lab["config"], "doctor", SUDO_NODE, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = json.loads(done.stdout)["nodes"]
    failed = [c for c in report["checks"] if c["required"] and not c["ok"]]
    assert [c["name"] for c in failed] == ["privileges"]
    print(failed[0])
    assert "password" in failed[0]["detail"]
    assert "NOPASSWD" in failed[0]["remedy"]

    refused = whimbrel_cli(lab["config"], "migrate", "east-1/kv", "--to", SUDO_NODE, "--yes")
    assert refused.returncode == 1
    said = refused.stdout + refused.stderr
    print(said)
    # The node's inventory, asked first, meets the sudo that asks.
    assert f"{SUDO_NODE}" in said and "a password is required" in said and "NOPASSWD" in said
    assert running_on("kv") == ["east-1"]
