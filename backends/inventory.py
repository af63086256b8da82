"""Every container on every node of every cluster, fetched concurrently.

A node that does not answer within the timeout is reported as unreachable, with the reason,
and never delays the others past that timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from whimbrel.backends.config import Node
from whimbrel.backends.errors import UsageError, WhimbrelError
from whimbrel.backends.ssh import SessionPool

DEFAULT_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    protocol: str
    host_ip: str | None = None
    host_port: int | None = None

    def __str__(self) -> str:
        inside = f"{self.container_port}/{self.protocol}"
        if self.host_port is None:
            return inside
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{inside}"


@dataclass(frozen=True)
class MountInfo:
    type: str  # volume, bind, tmpfs
    destination: str
    source: str
    name: str | None = None  # the volume's name
    read_write: bool = True


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    state: str  # running, exited, paused, created, ...
    status: str  # Docker's words, e.g. "Up 3 minutes"
    node: str
    cluster: str
    memory_bytes: int | None = None
    started_at: datetime | None = None
    pid: int | None = None
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[MountInfo, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    network_mode: str = ""

    @property
    def ref(self) -> str:
        """The unambiguous name: NODE/NAME."""
        return f"{self.node}/{self.name}"

    @property
    def running(self) -> bool:
        return self.state == "running"

    def uptime_s(self, now: datetime | None = None) -> float | None:
        if not self.running or self.started_at is None:
            return None
        now = now or datetime.now(self.started_at.tzinfo)
        return max(0.0, (now - self.started_at).total_seconds())


@dataclass(frozen=True)
class NodeInventory:
    node: str
    cluster: str
    reachable: bool
    containers: tuple[ContainerInfo, ...] = ()
    error: str | None = None
    elapsed_s: float = 0.0
    memory_available: int | None = None  # bytes new work can get (MemAvailable); None: unknown


@dataclass(frozen=True)
class Inventory:
    nodes: tuple[NodeInventory, ...]
    taken_at: float

    @property
    def containers(self) -> tuple[ContainerInfo, ...]:
        return tuple(c for n in self.nodes for c in n.containers)

    def resolve(self, ref: str) -> ContainerInfo:
        """A container by NODE/NAME, name, or id prefix; ambiguity and absence are errors."""
        node_name, sep, name = ref.rpartition("/")
        candidates = self.containers
        if sep:
            candidates = tuple(c for c in candidates if c.node == node_name)
        else:
            name = ref
        matches = [c for c in candidates if c.name == name]
        if not matches and len(name) >= 4 and all(ch in "0123456789abcdef" for ch in name):
            matches = [c for c in candidates if c.id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            where = ", ".join(c.ref for c in matches)
            raise UsageError(f"{ref!r} names several containers ({where}): say NODE/NAME")
        down = [n.node for n in self.nodes if not n.reachable]
        hint = f" (not answering: {', '.join(down)})" if down else ""
        raise UsageError(f"no container {ref!r} on any reachable node{hint}")


def _parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python reads at most microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        frac = rest.rstrip("Z")
        tz = ""
        for sign in ("+", "-"):
            if sign in frac:
                frac, _, tz_tail = frac.partition(sign)
                tz = sign + tz_tail
        text = f"{head}.{frac[:6]}{tz or '+00:00'}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def container_from(
    node: Node,
    summary: Mapping[str, Any],
    inspect: Mapping[str, Any] | None,
    memory_bytes: int | None,
) -> ContainerInfo:
    state = (inspect or {}).get("State") or {}
    host_config = (inspect or {}).get("HostConfig") or {}
    ports = tuple(
        PortBinding(p["PrivatePort"], p.get("Type", "tcp"), p.get("IP"), p.get("PublicPort"))
        for p in summary.get("Ports") or ()
    )
    mounts = tuple(
        MountInfo(
            type=m.get("Type", ""),
            destination=m.get("Destination", ""),
            source=m.get("Source", ""),
            name=m.get("Name"),
            read_write=bool(m.get("RW", True)),
        )
        for m in summary.get("Mounts") or ()
    )
    return ContainerInfo(
        id=summary["Id"],
        name=(summary.get("Names") or ["/?"])[0].lstrip("/"),
        image=summary.get("Image", ""),
        state=summary.get("State", ""),
        status=summary.get("Status", ""),
        node=node.name,
        cluster=node.cluster,
        memory_bytes=memory_bytes,
        started_at=_parse_time(state.get("StartedAt")),
        pid=state.get("Pid") or None,
        ports=ports,
        mounts=mounts,
        labels=dict(summary.get("Labels") or {}),
        network_mode=host_config.get("NetworkMode", ""),
    )


def _containers(node: Node, found: Any, started: float) -> NodeInventory:
    """The node's answer from the inventory helper's JSON (backends/remote/inventory.py)."""
    try:
        containers = tuple(
            container_from(node, c["summary"], c["inspect"], c["memory"])
            for c in found["containers"]
        )
        available = found.get("memory_available")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WhimbrelError(f"inventory: an answer not understood ({exc!r})") from None
    return NodeInventory(
        node.name,
        node.cluster,
        True,
        containers,
        elapsed_s=time.monotonic() - started,
        memory_available=available,
    )


def _unreachable(node: Node, error: str, started: float) -> NodeInventory:
    return NodeInventory(
        node.name,
        node.cluster,
        False,
        error=error.removeprefix(f"{node.name}: "),
        elapsed_s=time.monotonic() - started,
    )


async def node_inventory(
    pool: SessionPool, node: Node, timeout: float = DEFAULT_TIMEOUT_S
) -> NodeInventory:
    """The node's containers, asked once: one helper run lists, inspects and weighs them all."""
    started = time.monotonic()
    try:
        found = await asyncio.wait_for(
            pool.session(node).run_helper(
                "inventory.py", [node.docker_socket], what="inventory", input=b"list\n"
            ),
            timeout,
        )
        return _containers(node, found, started)
    except TimeoutError:
        return _unreachable(node, f"no answer within {timeout:g} s", started)
    except WhimbrelError as exc:
        return _unreachable(node, str(exc), started)


async def watch_inventory(
    pool: SessionPool, node: Node, every_s: float, timeout: float = DEFAULT_TIMEOUT_S
) -> AsyncIterator[NodeInventory]:
    """The node's containers now, then again `every_s` after each answer, for as long as it is
    iterated, from one helper kept running on the node (a helper started per answer cost a
    process on the node and a channel here every time: at 20 nodes, after drawing, the
    console's largest cost). A node that does not answer within `timeout` is reported as
    unreachable, with the reason, and its helper started again `every_s` later."""
    session = pool.session(node)
    while True:
        started = time.monotonic()
        try:
            async with AsyncExitStack() as stack:
                conversation = session.conversation(
                    "inventory.py", [node.docker_socket], what="inventory"
                )
                helper = await asyncio.wait_for(stack.enter_async_context(conversation), timeout)
                while True:
                    left = timeout - (time.monotonic() - started)
                    found = await asyncio.wait_for(helper.ask("list"), left)
                    yield _containers(node, found, started)
                    await asyncio.sleep(every_s)
                    started = time.monotonic()
        except TimeoutError:
            yield _unreachable(node, f"no answer within {timeout:g} s", started)
        except WhimbrelError as exc:
            yield _unreachable(node, str(exc), started)
        await asyncio.sleep(every_s)


async def fetch_inventory(pool: SessionPool, timeout: float = DEFAULT_TIMEOUT_S) -> Inventory:
    nodes = await asyncio.gather(*(node_inventory(pool, n, timeout) for n in pool.config.nodes))
    return Inventory(tuple(nodes), time.time())
