"""What an evacuation's plan needs, measured: the containers on the nodes to empty (each one's
size, dirty rate and share of distinct pages), the targets' available memory, and the RTT and
throughput of every path the placement uses, one path at a time (probes of two paths would
share the link and each see half of it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from whimbrel.backends.config import Config, Node
from whimbrel.backends.errors import UsageError, WhimbrelError
from whimbrel.backends.evacuation.plan import Destination, Leaving, Route, Stay
from whimbrel.backends.inventory import ContainerInfo, fetch_inventory
from whimbrel.backends.probes import measure_dirty, probe_rtt, probe_throughput
from whimbrel.backends.ssh import SessionPool

DIRTY_SECONDS = 2.0  # as the engine's preflight samples
CONCURRENT_SAMPLERS = 4
RTT_SAMPLES = 5

Say = Callable[[str], object]


@dataclass(frozen=True)
class Survey:
    sources: tuple[str, ...]  # the nodes to empty
    leaving: tuple[Leaving, ...]  # their running containers, measured
    destinations: tuple[Destination, ...]  # reachable targets, in config order
    stays: tuple[Stay, ...]  # running containers that could not be measured
    idle: tuple[str, ...]  # containers not running there: nothing to live-migrate


def nodes_named(config: Config, name: str, what: str) -> tuple[Node, ...]:
    """A node's name, or a cluster's (all its nodes)."""
    if name in config.clusters:
        return config.nodes_of(name)
    if any(n.name == name for n in config.nodes):
        return (config.node(name),)
    nodes = ", ".join(n.name for n in config.nodes) or "none"
    clusters = ", ".join(config.clusters) or "none"
    raise UsageError(
        f"{what}: no node or cluster named {name!r} (nodes: {nodes}; clusters: {clusters})"
    )


def _refuse_read_only(config: Config, nodes: Sequence[Node]) -> None:
    for node in nodes:
        if config.clusters[node.cluster].read_only:
            raise UsageError(f"cluster {node.cluster} is read-only: no migration from or to it")


async def survey(pool: SessionPool, source: str, to: str | None, say: Say) -> Survey:
    config = pool.config
    sources = nodes_named(config, source, "evacuate")
    clusters = {n.cluster for n in sources}
    if to is None:
        targets = tuple(n for n in config.nodes if n.cluster not in clusters)
    else:
        targets = nodes_named(config, to, "--to")
    if overlap := {n.name for n in targets} & {n.name for n in sources}:
        raise UsageError(f"--to names a node being evacuated: {', '.join(sorted(overlap))}")
    if not targets:
        raise UsageError(f"no node outside {', '.join(sorted(clusters))} to move containers to")
    _refuse_read_only(config, (*sources, *targets))

    say("inventory of every node…")
    inventory = await fetch_inventory(pool)
    answers = {n.node: n for n in inventory.nodes}
    down = [n.name for n in sources if not answers[n.name].reachable]
    if down:
        raise WhimbrelError(
            f"cannot evacuate: {', '.join(down)} not answering ({answers[down[0]].error})"
        )
    destinations = tuple(
        Destination(n.name, answers[n.name].memory_available)
        for n in targets
        if answers[n.name].reachable
    )
    if not destinations:
        raise WhimbrelError(f"no target answering: {', '.join(n.name for n in targets)}")
    here = [c for n in sources for c in answers[n.name].containers]
    running = [c for c in here if c.running]
    say(f"dirty rates of {len(running)} containers ({DIRTY_SECONDS:g} s each)…")
    gate = asyncio.Semaphore(CONCURRENT_SAMPLERS)
    measured = await asyncio.gather(*(_measure(pool, c, gate) for c in running))
    return Survey(
        sources=tuple(n.name for n in sources),
        leaving=tuple(m for m in measured if isinstance(m, Leaving)),
        destinations=destinations,
        stays=tuple(m for m in measured if isinstance(m, Stay)),
        idle=tuple(c.ref for c in here if not c.running),
    )


async def _measure(
    pool: SessionPool, container: ContainerInfo, gate: asyncio.Semaphore
) -> Leaving | Stay:
    async with gate:
        try:
            report = await measure_dirty(pool, container, DIRTY_SECONDS)
        except (WhimbrelError, OSError) as exc:
            return Stay(container.ref, f"dirty rate not measured: {exc}")
    return Leaving(
        container.ref,
        container.node,
        float(container.memory_bytes or report.memory_bytes),
        report.bytes_per_s,
        report.distinct_share or 1.0,
    )


async def measure_routes(
    pool: SessionPool, pairs: Sequence[tuple[str, str]], probe_bytes: int, say: Say
) -> dict[tuple[str, str], Route]:
    """Each path's RTT, then its throughput over the stripes a round would use; one path at
    a time."""
    config = pool.config
    routes: dict[tuple[str, str], Route] = {}
    for src, dst in pairs:
        say(f"path {src} -> {dst}: RTT and throughput…")
        rtt = await probe_rtt(pool, config.node(src), config.node(dst), RTT_SAMPLES)
        measured = await probe_throughput(
            pool, config.node(src), config.node(dst), probe_bytes, rtt.rtt_s
        )
        routes[(src, dst)] = Route(rtt.rtt_s, measured.bytes_per_s)
    return routes
