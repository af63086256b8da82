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
    """A connection not yet seen closed, which fails the next channel the way it dropped."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def is_closed(self) -> bool:
        return False

    async def create_process(self, *_: Any, **__: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "SSH connection closed"),
         "SSH connection closed"),
        (ConnectionResetError(104, "Connection reset by peer"), "Connection reset by peer"),
        (asyncssh.ConnectionLost("Connection lost"), "Connection lost"),
    ],
    ids=["channel refused", "socket reset", "connection lost"],
)  # fmt: skip
def test_a_connection_dropped_under_a_channel_is_the_node_unreachable(
    error: Exception, said: str
) -> None:
    # The engine follows a hand-over through NodeUnreachable (it connects again); a raw
    # ChannelOpenError, or the socket's own reset (CI, dropping the source's sshd sessions
    # mid-hand-over), used to end the migration instead.
    config = Config(path=Path("whimbrel.toml"), clusters={}, nodes=())
    session = NodeSession(Node("east-1", "east", "198.18.1.10"), config, asyncio.Semaphore(1))
    session._conn = JustDropped(error)  # type: ignore[assignment]

    async def follow() -> None:
        async for _ in session.stream_python("print(1)", []):
            pass

    with pytest.raises(NodeUnreachable, match=said):
        asyncio.run(follow())
