"""What the console has seen and measured of the clusters, fed by workers' messages, read by
the screens."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

from whimbrel.app.planning import DirtyRate, PathMeasurements, container_size, mean_dirty_rate
from whimbrel.backends.config import Config
from whimbrel.backends.doctor import NodeReport
from whimbrel.backends.evacuation import Destination, Leaving, Route
from whimbrel.backends.inventory import ContainerInfo, NodeInventory
from whimbrel.backends.probes import RttResult, ThroughputResult

RTT_POINTS = 600  # three samples a probe, a probe every 2 s: ten minutes, more than a chart shows
DIRTY_POINTS = 300  # one sample a second: five minutes
LOAD_WINDOWS = 8  # throughput probes remembered per path: samples arrive seconds after them

Pair = tuple[str, str]
ProbeKind = Literal["rtt", "throughput"]


@dataclass
class LoadWindow:
    """When a throughput probe loaded a path, in wall-clock seconds (as RTT samples are
    stamped); `end` is infinite while it runs."""

    start: float
    end: float = math.inf

    def holds(self, t: float) -> bool:
        return self.start <= t <= self.end


def path_of(pair: Pair) -> Pair:
    """A path whichever way round: a round trip crosses both directions, so a throughput
    probe either way loads an RTT sample of either."""
    a, b = pair
    return (a, b) if a <= b else (b, a)


class Observations:
    """The console's picture of the clusters: every node's answer, the series the charts draw,
    the probes' errors. Every series is a bounded deque, so a console left open for a week stays
    the same size."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.nodes: dict[str, NodeInventory | None] = {n.name: None for n in config.nodes}
        self.answered_at: dict[str, float] = {}  # node -> monotonic time of its last answer
        self.rtt: dict[Pair, deque[tuple[float, float]]] = {}
        self.rtt_last: dict[Pair, float] = {}
        self.throughput: dict[Pair, ThroughputResult] = {}
        self.dirty: dict[str, deque[DirtyRate]] = {}
        # Why the last probe or sampling failed, until the next one succeeds.
        self.rtt_errors: dict[Pair, str] = {}
        self.throughput_errors: dict[Pair, str] = {}
        self.dirty_errors: dict[str, str] = {}  # by container ref
        self.busy: dict[str, str] = {}  # ref -> what is happening to it, e.g. "migrating"
        self.readiness: dict[str, NodeReport] = {}  # node -> its doctor's last report
        self.examining: set[str] = set()  # nodes whose doctor is running now
        self._probing: dict[Pair, asyncio.Lock] = {}
        self._loaded: dict[Pair, deque[LoadWindow]] = {}  # by path_of()

    def probing(self, pair: Pair) -> asyncio.Lock:
        """Held while a path is probed: an RTT taken while the throughput probe fills the link
        measures the link's queue (155 ms on the lab's 40 ms path), not the path."""
        return self._probing.setdefault(pair, asyncio.Lock())

    @contextmanager
    def loading(self, pair: Pair) -> Iterator[None]:
        """Held while a throughput probe of `pair` fills the path; RTT samples taken meanwhile
        are left out (see add_rtt). The `probing` lock keeps this console's own RTT polls of
        `pair` apart from the probe; this also covers the reverse direction and samples that
        arrive after the probe ended."""
        window = LoadWindow(time.time())
        self._loaded.setdefault(path_of(pair), deque(maxlen=LOAD_WINDOWS)).append(window)
        try:
            yield
        finally:
            window.end = time.time()

    def under_load(self, pair: Pair, t: float) -> bool:
        """Whether a throughput probe of the path was running at wall-clock time `t`."""
        return any(w.holds(t) for w in self._loaded.get(path_of(pair), ()))

    @property
    def all_answered(self) -> bool:
        return all(n is not None for n in self.nodes.values())

    def answered_since(self, moment: float) -> bool:
        """Every node has answered (or been found unreachable) after `moment` (monotonic)."""
        return all(self.answered_at.get(n, 0.0) > moment for n in self.nodes)

    def set_node(self, inventory: NodeInventory) -> None:
        self.nodes[inventory.node] = inventory
        self.answered_at[inventory.node] = time.monotonic()

    def moved(self, ref: str, running_on: str) -> None:
        """A migration of this console's put the container `ref` (NODE/NAME) on `running_on`:
        its source's last answer no longer holds it. Without this the table showed it on both
        nodes until the source answered again (the target often answers first)."""
        node, _, name = ref.rpartition("/")
        source = self.nodes.get(node)
        if node == running_on or source is None:
            return
        kept = tuple(c for c in source.containers if c.name != name)
        self.nodes[node] = replace(source, containers=kept)

    def set_readiness(self, report: NodeReport) -> None:
        self.readiness[report.node] = report
        self.examining.discard(report.node)

    def containers(self) -> list[ContainerInfo]:
        return [c for inv in self.nodes.values() if inv is not None for c in inv.containers]

    def container(self, ref: str) -> ContainerInfo | None:
        return next((c for c in self.containers() if c.ref == ref), None)

    def find(self, name: str) -> ContainerInfo | None:
        """A container by name, wherever it runs now."""
        return next((c for c in self.containers() if c.name == name), None)

    def reachable(self, node: str) -> bool | None:
        inv = self.nodes.get(node)
        return None if inv is None else inv.reachable

    def cluster_of(self, node: str) -> str:
        return self.config.node(node).cluster

    def targets_for(self, container: ContainerInfo) -> list[str]:
        """Nodes of the other clusters, in config order: where a migration can go."""
        return [n.name for n in self.config.nodes if n.cluster != container.cluster]

    def default_target(self, container: ContainerInfo) -> str | None:
        targets = self.targets_for(container)
        answering = [t for t in targets if self.reachable(t) is not False]
        return (answering or targets or [None])[0]

    def add_rtt(self, result: RttResult) -> None:
        pair = (result.src, result.dst)
        # A sample taken while a throughput probe fills the path measures the probe's own
        # queue (155 ms on the lab's 40 ms path), not the path: it is left out of the chart and
        # of the RTT the plans use. Left out rather than marked: a marked spike would still
        # set the chart's scale and squash the real RTT into its floor.
        kept = [s for s in result.samples if not self.under_load(pair, s.t)]
        series = self.rtt.setdefault(pair, deque(maxlen=RTT_POINTS))
        series.extend((s.t, s.rtt_s * 1000) for s in kept)
        if len(kept) == len(result.samples):
            self.rtt_last[pair] = result.rtt_s
        elif kept:
            self.rtt_last[pair] = statistics.median(s.rtt_s for s in kept)
        self.rtt_errors.pop(pair, None)

    def add_dirty(self, ref: str, sample: DirtyRate) -> None:
        self.dirty.setdefault(ref, deque(maxlen=DIRTY_POINTS)).append(sample)
        self.dirty_errors.pop(ref, None)

    def set_throughput(self, result: ThroughputResult) -> None:
        self.throughput[(result.src, result.dst)] = result
        self.throughput_errors.pop((result.src, result.dst), None)

    def probe_failed(self, kind: ProbeKind, pair: Pair, error: str) -> None:
        (self.rtt_errors if kind == "rtt" else self.throughput_errors)[pair] = error

    def dirty_rate(self, ref: str) -> float | None:
        return mean_dirty_rate(self.dirty.get(ref, ()))

    def measurements(self, container: ContainerInfo, target: str) -> PathMeasurements:
        pair = (container.node, target)
        through = self.throughput.get(pair)
        return replace(
            self._state(container),
            rtt=self.rtt_last.get(pair),
            bandwidth=through.bytes_per_s if through else None,
        )

    def _state(self, container: ContainerInfo) -> PathMeasurements:
        """What was measured of the container itself, whatever the path."""
        dirty = self.dirty.get(container.ref, ())
        return PathMeasurements(
            size=container_size(container, dirty),
            dirty_rate=self.dirty_rate(container.ref),
            distinct_share=dirty[-1].distinct_share if dirty else None,
        )

    def leaving(self, container: ContainerInfo) -> Leaving | None:
        """The container as an evacuation plans it; None until its size and dirty rate are
        known."""
        state = self._state(container)
        if state.size is None or state.dirty_rate is None:
            return None
        return Leaving(
            container.ref,
            container.node,
            state.size,
            state.dirty_rate,
            state.distinct_share or 1.0,
        )

    def route(self, pair: Pair) -> Route | None:
        """The path as an evacuation plans it; None until its RTT and throughput are known."""
        rtt, through = self.rtt_last.get(pair), self.throughput.get(pair)
        if rtt is None or through is None:
            return None
        return Route(rtt, through.bytes_per_s)

    def destination(self, node: str) -> Destination:
        """A target node with the memory its last inventory said new work can get."""
        inventory = self.nodes.get(node)
        return Destination(node, inventory.memory_available if inventory else None)
