"""Whether a migration may start, in words (None when it may): the preconditions the console
asks before its confirmation modal and `whimbrel migrate` asks before it touches a node.

It imports nothing of app/ and no Textual: the engine, which checks some of the same again
once it reaches the nodes (a read-only cluster, the target answering), can own it as it is."""

from __future__ import annotations

from pathlib import Path

from whimbrel.backends.config import Config
from whimbrel.backends.inventory import ContainerInfo

READ_ONLY_CONSOLE = "the console is read-only: no migration can start"
READ_ONLY_HEADLESS = "read-only (--read-only): no migration can start"


def read_only_refusal(read_only: bool, *, headless: bool = False) -> str | None:
    """The operator's read-only (--read-only, the config's [console], the palette): nothing
    starts, whatever the container."""
    if not read_only:
        return None
    return READ_ONLY_HEADLESS if headless else READ_ONLY_CONSOLE


def move_refusal(
    container: ContainerInfo,
    target: str | None,
    config: Config,
    config_path: Path,
    target_answers: bool | None,
) -> str | None:
    """Why this container may not go to this target node (None: not known to be unanswering)."""
    if target is None:
        return f"no node in another cluster to move {container.name} to"
    for node in (container.node, target):
        cluster = config.clusters.get(config.node(node).cluster)
        if cluster is not None and cluster.read_only:
            return f"cluster {cluster.name} is read-only in {config_path}"
    if not container.running:
        return f"{container.name} is {container.state}: only a running container migrates"
    for mount in container.mounts:
        if mount.type == "bind":  # the engine refuses these too; say so before the modal
            return (
                f"bind mount {mount.source} -> {mount.destination}: whimbrel does not move "
                "bind-mounted host data yet"
            )
    if target_answers is False:
        return f"{target} is not answering"
    return None
