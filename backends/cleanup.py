"""Undoing what preflight made, as the migration's exit stack unwinds: each step reads the
outcome first, and leaves alone what `recover` still needs or what now serves."""

from __future__ import annotations

from whimbrel.backends.config import Node
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.node_actions import settle_on_target, source_action, target_action
from whimbrel.backends.outcome import Outcome
from whimbrel.backends.ssh import NodeSession


async def release_lock(migration: str, src: NodeSession, cid: str, outcome: Outcome) -> None:
    """The container's lock on its node, and the source's work dir."""
    if outcome.for_recover():
        return  # its daemon's outcome is in the work dir: `recover` needs it
    try:
        await source_action(src, "release", migration, cid)
    except WhimbrelError as exc:
        outcome.cleanup_failed(f"release on {src.node.name}: {exc}")


async def settle_target(
    migration: str, session: NodeSession, dst: Node, cid: str, outcome: Outcome
) -> None:
    """A migration that did not commit: the target records "aborted" (unless a verdict
    stands) and its container goes; a committed record is never undone."""
    if outcome.ok or outcome.unsettled():
        return  # it serves, or may be about to
    try:
        verdict = await settle_on_target(session, migration, dst.docker_socket, cid)
    except WhimbrelError as exc:
        outcome.warnings.append(f"target cleanup: {exc}")
        outcome.handover = "running"  # unknown: for `recover`, not for a guess
        return
    if verdict == "committed":  # the daemon's outcome said otherwise
        outcome.warnings.append(
            f"{dst.name} recorded the commit: the container runs there; "
            "`whimbrel recover` settles the source"
        )
        outcome.handover, outcome.running_on = "running", dst.name


async def forget_decision(migration: str, session: NodeSession, outcome: Outcome) -> None:
    """The target's decision record, dropped last, once every party has acted on it."""
    if outcome.for_recover():
        return  # the record is what `recover` settles from
    try:
        await target_action(session, "forget", migration)
    except WhimbrelError as exc:
        outcome.cleanup_failed(f"target cleanup: {exc}")
