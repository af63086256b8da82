"""The migration's calls into the helpers it runs on the nodes: source.py on the source,
receiver.py's operator actions on the target, and the target.json the operator writes there."""

from __future__ import annotations

import json
from typing import Any

from whimbrel.backends.channel import NodeLink
from whimbrel.backends.ssh import NodeSession

_WRITE_FILE = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"


async def source_action(
    session: NodeSession, action: str, *args: str, timeout: float = 120
) -> dict[str, Any]:
    """Run a source.py action on the source node."""
    return await session.run_helper("source.py", [action, *args], what=action, timeout=timeout)


async def target_action(session: NodeSession, action: str, *args: str) -> dict[str, Any]:
    """Run one of receiver.py's operator actions (the decision record) on the target node."""
    return await session.run_helper("receiver.py", [action, *args], what=f"target {action}")


async def settle_on_target(
    session: NodeSession, migration: str, docker_socket: str, target_id: str
) -> str:
    """The verdict that stands on the target for `migration`, carried out there: "aborted"
    is recorded unless a verdict stands (its container then goes), "committed" serves, and
    "forgotten" means the target no longer expects the migration."""
    answer = await target_action(session, "settle", migration, docker_socket, target_id)
    return answer["decision"]


async def settle_on_source(
    session: NodeSession, migration: str, cid: str, verdict: str
) -> dict[str, Any]:
    """The source carries out the target's verdict on its container: the outcome it wrote."""
    answer = await source_action(session, "settle", migration, cid, verdict)
    return answer["outcome"]


async def write_target(session: NodeSession, link: NodeLink, where: dict[str, Any]) -> None:
    """The receiver's target.json: what the operator, not the source, decided for it."""
    await session.run_python(
        _WRITE_FILE, [f"{link.dst_dir}/target.json"], input=json.dumps(where).encode()
    )


def link_json(link: NodeLink) -> str:
    """The link's command lines, as the source's helpers take them."""
    return json.dumps(link.argvs())
