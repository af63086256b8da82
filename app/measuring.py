"""The measuring the console's workers run: each asks the Backend and hands what it gets (or
why it got nothing) to `post` as a typed message; the app files it in its Observations.
Nothing here touches a widget, and one failure is a message, never an exception."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing

from textual.message import Message

from whimbrel.app.backend import Backend
from whimbrel.app.messages import (
    DirtyFailed,
    DirtySampled,
    NodeExamined,
    NodeInventoryLoaded,
    ProbeFailed,
    RttMeasured,
    ThroughputMeasured,
)
from whimbrel.app.observations import Observations
from whimbrel.backends.doctor import Check, NodeReport
from whimbrel.backends.inventory import ContainerInfo, NodeInventory

DIRTY_INTERVAL_S = 1.0
DIRTY_RETRY_S = 10.0

Post = Callable[[Message], object]


async def follow_inventory(backend: Backend, node: str, every_s: float, post: Post) -> None:
    """A node's containers as the backend brings them: now, then `every_s` after each answer."""
    while True:
        try:
            answers = backend.inventories(node, every_s)
            async with aclosing(answers):
                async for inventory in answers:
                    post(NodeInventoryLoaded(inventory))
        except Exception as exc:  # one node's trouble must never take the console down
            cluster = backend.config.node(node).cluster
            post(NodeInventoryLoaded(NodeInventory(node, cluster, False, error=str(exc))))
        await asyncio.sleep(every_s)


async def examine_node(backend: Backend, node: str, post: Post) -> None:
    """The node's doctor, once: each of its checks reports its own trouble, so an exception
    here is the doctor's own (a lost connection mid-way); it reads as one failed check."""
    try:
        report = await backend.doctor(node)
    except Exception as exc:
        cluster = backend.config.node(node).cluster
        why = str(exc) or type(exc).__name__
        found = Check("doctor", False, why, f"check again, or run `whimbrel doctor {node}`")
        report = NodeReport(node, cluster, (found,))
    post(NodeExamined(report))


async def poll_rtt(
    backend: Backend, observed: Observations, src: str, dst: str, every_s: float, post: Post
) -> None:
    while True:
        try:
            async with observed.probing((src, dst)):
                post(RttMeasured(await backend.rtt(src, dst)))
        except Exception as exc:  # shown on the chart; the loop tries again
            post(ProbeFailed("rtt", src, dst, str(exc)))
        await asyncio.sleep(every_s)


async def sample_dirty(
    backend: Backend, container: ContainerInfo, post: Post, samples: int | None = None
) -> bool:
    """The container's dirty rate, a sample a second, until the sampler ends or `samples` are
    taken; False when sampling failed."""
    taken = 0
    try:
        async for sample in backend.dirty(container, DIRTY_INTERVAL_S):
            post(DirtySampled(container.ref, sample))
            taken += 1
            if samples is not None and taken >= samples:
                break
    except Exception as exc:  # a container without soft-dirty support, a lost node...
        post(DirtyFailed(container.ref, str(exc) or type(exc).__name__))
        return False
    return True


async def keep_sampling_dirty(
    backend: Backend, observed: Observations, ref: str, post: Post
) -> None:
    """Sample the container for as long as it runs, again after a pause when sampling fails."""
    while True:
        # As the inventory knows it now: a restarted container has a new pid.
        container = observed.container(ref)
        if container is None or not container.running:
            return
        if not await sample_dirty(backend, container, post):
            await asyncio.sleep(DIRTY_RETRY_S)


async def measure_path(
    backend: Backend, observed: Observations, src: str, dst: str, post: Post
) -> None:
    """The path's throughput (tens of MiB: never on a timer), with its RTT first if none was
    measured yet; a failure of either is the throughput's. RTT samples of the path taken while
    the throughput runs are not charted (Observations.loading)."""
    try:
        async with observed.probing((src, dst)):
            rtt = observed.rtt_last.get((src, dst))
            if rtt is None:
                result = await backend.rtt(src, dst)
                post(RttMeasured(result))
                rtt = result.rtt_s
            with observed.loading((src, dst)):
                throughput = await backend.throughput(src, dst, rtt)
            post(ThroughputMeasured(throughput))
    except Exception as exc:
        post(ProbeFailed("throughput", src, dst, str(exc)))
