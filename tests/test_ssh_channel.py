"""How a node session reports a connection that drops under it (pure logic, a fake connection)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from whimbrel.backends.config import Config, Node
from whimbrel.backends.ssh import NodeSession, NodeUnreachable


class JustDropped:
    """A connection not yet seen closed, on which no channel opens any more."""

    def is_closed(self) -> bool:
        return False

    async def create_process(self, *_: Any, **__: Any) -> None:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "SSH connection closed")


def test_a_channel_refused_by_a_dropped_connection_is_the_node_unreachable() -> None:
    # The engine follows a hand-over through NodeUnreachable (it connects again); a raw
    # ChannelOpenError used to end the migration instead.
    config = Config(path=Path("whimbrel.toml"), clusters={}, nodes=())
    session = NodeSession(Node("east-1", "east", "198.18.1.10"), config, asyncio.Semaphore(1))
    session._conn = JustDropped()  # type: ignore[assignment]

    async def follow() -> None:
        async for _ in session.stream_python("print(1)", []):
            pass

    with pytest.raises(NodeUnreachable, match="SSH connection closed"):
        asyncio.run(follow())
