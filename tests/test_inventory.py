"""Naming containers: NODE/NAME, name, id prefix; ambiguity and absence explained."""

from __future__ import annotations

import pytest

from whimbrel.backends.errors import UsageError
from whimbrel.backends.inventory import ContainerInfo, Inventory, NodeInventory, _parse_time


def _c(name: str, node: str, cid: str) -> ContainerInfo:
    return ContainerInfo(cid, name, "img", "running", "Up", node, node.split("-")[0])


INVENTORY = Inventory(
    (
        NodeInventory("east-1", "east", True, (_c("kv", "east-1", "abc123" + "0" * 58),)),
        NodeInventory(
            "west-1",
            "west",
            True,
            (_c("kv", "west-1", "def456" + "0" * 58), _c("hot", "west-1", "fed789" + "0" * 58)),
        ),
        NodeInventory("west-2", "west", False, error="refused"),
    ),
    0.0,
)


def test_a_unique_name_resolves() -> None:
    assert INVENTORY.resolve("hot").node == "west-1"


def test_a_name_on_several_nodes_needs_node_slash_name() -> None:
    with pytest.raises(UsageError, match=r"east-1/kv, west-1/kv.*say NODE/NAME"):
        INVENTORY.resolve("kv")
    assert INVENTORY.resolve("west-1/kv").id.startswith("def456")


def test_an_id_prefix_resolves() -> None:
    assert INVENTORY.resolve("abc1").ref == "east-1/kv"


def test_an_unknown_name_mentions_nodes_that_did_not_answer() -> None:
    with pytest.raises(UsageError, match=r"no container 'nope'.*not answering: west-2"):
        INVENTORY.resolve("nope")


def test_docker_nanosecond_timestamps_are_read() -> None:
    t = _parse_time("2026-11-26T07:01:02.123456789Z")
    assert t is not None and t.microsecond == 123456 and t.utcoffset().total_seconds() == 0
    assert _parse_time("0001-01-01T00:00:00Z") is None
