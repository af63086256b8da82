"""The console's view of the world: what it asks of the clusters, as one small Protocol.

The app depends on `Backend` only; `LiveBackend` implements it over one SessionPool and the
backends (inventory, probes, dirty-rate sampling, the migration engine, its history records).
All network work happens here, never in widgets. tests/console/fake_backend.py is the only
other implementation, for deterministic snapshots.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from whimbrel.backends.config import Config
from whimbrel.backends.dirty import DirtySample
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundStarted,
)
from whimbrel.backends.history import history_dir, read_records
from whimbrel.backends.inventory import ContainerInfo, NodeInventory, node_inventory
from whimbrel.backends.probes import (
    RttResult,
    ThroughputResult,
    probe_rtt,
    probe_throughput,
    stream_dirty,
)
from whimbrel.backends.ssh import SessionPool

if TYPE_CHECKING:
    from whimbrel.backends.engine import MigrationRequest
    from whimbrel.backends.model import Plan

INVENTORY_TIMEOUT_S = 6.0
RTT_SAMPLES = 3  # per probe: the chart gets a point per sample, the probe stays under a second


@dataclass(frozen=True)
class DirtyRate:
    """One dirty-page sample of a container, as the charts and the model want it."""

    t: float  # the sampling node's clock at the end of the interval (one clock per series)
    pages_per_s: float
    bytes_per_s: float
    state_bytes: float  # what a dump would carry now (writable memory), bytes


@dataclass(frozen=True)
class MigrationOrder:
    """One migration the operator confirmed."""

    container: ContainerInfo
    target: str  # node name
    downtime_target_s: float
    plan: Plan | None = None  # the prediction shown when it was confirmed

    @property
    def label(self) -> str:
        return f"{self.container.name}: {self.container.node} → {self.target}"


class MigrationHandle(Protocol):
    def events(self) -> AsyncIterator[MigrationEvent]: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class HistoryRecord:
    """A past migration, from the engine's JSON record."""

    path: str
    started_at: float | None
    container: str
    src: str
    dst: str
    ok: bool
    status: str  # done, failed, or pending (a run that died; `whimbrel migrate` settles it)
    running_on: str
    mode: str
    rounds: int
    downtime_s: float | None
    predicted_downtime_s: float | None
    total_time_s: float | None
    predicted_total_time_s: float | None
    bytes_sent: int | None
    predicted_bytes: float | None
    brownouts_s: tuple[float, ...] = ()
    error: str | None = None
    events: tuple[MigrationEvent, ...] = field(default=(), compare=False)


class Backend(Protocol):
    """Everything the console asks of the world. Async methods run in the app's event loop."""

    config: Config

    async def node_inventory(self, node: str) -> NodeInventory: ...

    async def rtt(self, src: str, dst: str) -> RttResult: ...

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult: ...

    def dirty(self, container: ContainerInfo, interval_s: float) -> AsyncIterator[DirtyRate]: ...

    def migrate(self, order: MigrationOrder) -> MigrationHandle: ...

    def history(self) -> list[HistoryRecord]:
        """Blocking file reads: call it from a thread worker."""
        ...

    async def recover(self) -> list[str]:
        """Settle migrations an earlier whimbrel left unfinished; one line per migration."""
        ...

    async def close(self) -> None: ...


# --- the model's inputs from what the console measured ------------------------------------


@dataclass(frozen=True)
class PathMeasurements:
    """What a preview plans from; None where nothing was measured yet."""

    size: float | None = None
    dirty_rate: float | None = None
    rtt: float | None = None
    bandwidth: float | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        names = ("size", "dirty rate", "RTT", "throughput")
        values = (self.size, self.dirty_rate, self.rtt, self.bandwidth)
        return tuple(n for n, v in zip(names, values, strict=True) if v is None)


def container_size(container: ContainerInfo, dirty: Sequence[DirtyRate]) -> float | None:
    """The state a dump carries, as the engine counts it: Docker's memory use, else the
    sampler's writable memory."""
    if container.memory_bytes is not None:
        return float(container.memory_bytes)
    return dirty[-1].state_bytes if dirty else None


def engine_defaults() -> MigrationRequest:
    """A request as the engine fills it in: its round cap, its throughput probe size."""
    from whimbrel.backends.engine import MigrationRequest

    return MigrationRequest(container="-", target="-")


def mean_dirty_rate(dirty: Iterable[DirtyRate], last: int = 10) -> float | None:
    rates = [d.bytes_per_s for d in dirty][-last:]
    return statistics.fmean(rates) if rates else None


def plan_for(m: PathMeasurements, downtime_target_s: float) -> Plan | None:
    """The plan the engine would make from these measurements (its costs, its round cap), or
    None until every input has been measured."""
    # The engine and the model (numpy) load on first use: the console opens faster.
    from whimbrel.backends.costs import DEFAULT_COSTS
    from whimbrel.backends.model import plan

    if m.missing:
        return None
    assert m.size is not None and m.dirty_rate is not None and m.rtt is not None
    assert m.bandwidth is not None and m.bandwidth > 0
    return plan(
        DEFAULT_COSTS.model_inputs(
            size=m.size,
            dirty_rate=m.dirty_rate,
            bandwidth=m.bandwidth,
            rtt=m.rtt,
            downtime_target=downtime_target_s,
            max_rounds=engine_defaults().max_rounds,
        )
    )


def name_of(container: str) -> str:
    """A container's name from the engine's NODE/NAME (or a bare name)."""
    return container.rpartition("/")[2]


def rounds_began_at(events: Iterable[MigrationEvent]) -> float | None:
    """When the rounds began (seconds into the migration): what came before is preflight,
    which the model's total time does not cover."""
    for e in events:
        if isinstance(e, RoundStarted) or (
            isinstance(e, PhaseChanged) and e.phase in (Phase.PRECOPY, Phase.FINAL)
        ):
            return e.t
    return None


# --- history records ------------------------------------------------------------------------

_EVENT_TYPES: dict[str, Any] = {
    "PhaseChanged": PhaseChanged,
    "RoundStarted": RoundStarted,
    "RoundFinished": RoundFinished,
    "LogLine": LogLine,
    "MigrationFinished": MigrationFinished,
}


def event_from_json(data: dict[str, Any]) -> MigrationEvent | None:
    """The inverse of events.event_json; None for an event this console does not know."""
    kind = _EVENT_TYPES.get(str(data.get("event")))
    if kind is None:
        return None
    fields = {k: v for k, v in data.items() if k in kind.__dataclass_fields__}
    if kind is PhaseChanged:
        fields["phase"] = Phase(fields["phase"])
    if kind is MigrationFinished:
        fields["brownouts_s"] = tuple(fields.get("brownouts_s") or ())
    try:
        return kind(**fields)
    except TypeError:
        return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def record_from_json(path: Path, data: dict[str, Any]) -> HistoryRecord:
    events = tuple(e for e in map(event_from_json, data.get("events") or ()) if e is not None)
    bytes_sent = _num(data.get("bytes_sent"))
    return HistoryRecord(
        path=str(path),
        started_at=_num(data.get("started_at")),
        container=str(data.get("container", "?")),
        src=str(data.get("src", "?")),
        dst=str(data.get("dst", "?")),
        ok=bool(data.get("ok")),
        status=str(data.get("status") or ("done" if data.get("ok") else "failed")),
        running_on=str(data.get("running_on", "?")),
        mode=str(data.get("mode", "?")),
        rounds=int(data.get("rounds") or 0),
        downtime_s=_num(data.get("downtime_s")),
        predicted_downtime_s=_num(data.get("predicted_downtime_s")),
        total_time_s=_num(data.get("total_time_s")),
        predicted_total_time_s=_num(data.get("predicted_total_time_s")),
        bytes_sent=int(bytes_sent) if bytes_sent is not None else None,
        predicted_bytes=_num(data.get("predicted_bytes")),
        brownouts_s=tuple(float(b) for b in data.get("brownouts_s") or ()),
        error=data.get("error"),
        events=events,
    )


def read_history(limit: int = 200) -> list[HistoryRecord]:
    """The engine's records, newest first."""
    records = read_records()[:limit]
    return [record_from_json(history_dir() / f"{r.get('id')}.json", r) for r in records]


# --- the real thing --------------------------------------------------------------------------


class _EngineMigration:
    """Adapts the engine's Migration to MigrationHandle."""

    def __init__(self, pool: SessionPool, order: MigrationOrder) -> None:
        from whimbrel.backends.engine import Migration, MigrationRequest

        request = MigrationRequest(
            container=order.container.ref,
            target=order.target,
            downtime_target_s=order.downtime_target_s,
        )
        self._migration = Migration(pool, request)

    def events(self) -> AsyncIterator[MigrationEvent]:
        return self._migration.events()

    def abort(self) -> None:
        self._migration.abort()


class LiveBackend:
    """The Backend over SSH: one SessionPool for the console's whole life."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool = SessionPool(config)

    async def node_inventory(self, node: str) -> NodeInventory:
        return await node_inventory(self._pool, self.config.node(node), INVENTORY_TIMEOUT_S)

    async def rtt(self, src: str, dst: str) -> RttResult:
        return await probe_rtt(
            self._pool, self.config.node(src), self.config.node(dst), RTT_SAMPLES
        )

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult:
        return await probe_throughput(
            self._pool,
            self.config.node(src),
            self.config.node(dst),
            n_bytes=engine_defaults().probe_bytes,
            rtt_s=rtt_s,
        )

    async def dirty(self, container: ContainerInfo, interval_s: float) -> AsyncIterator[DirtyRate]:
        # One long stream (one helper process on the node), restarted by the caller when it
        # ends; its first record gives the node's page size.
        page_size = 4096
        records = stream_dirty(self._pool, container, seconds=600.0, interval=interval_s)
        async with aclosing(records):
            async for record in records:
                if isinstance(record, DirtySample):
                    interval = max(record.interval_s, 1e-6)
                    yield DirtyRate(
                        t=record.t,
                        pages_per_s=record.dirty_pages / interval,
                        bytes_per_s=record.dirty_bytes / interval,
                        state_bytes=float(record.pages * page_size),
                    )
                elif record.get("type") == "start":
                    page_size = int(record.get("page_size", page_size))

    def migrate(self, order: MigrationOrder) -> MigrationHandle:
        return _EngineMigration(self._pool, order)

    def history(self) -> list[HistoryRecord]:
        return read_history()

    async def recover(self) -> list[str]:
        from whimbrel.backends.engine import recover

        return [found.text for found in await recover(self._pool)]

    async def close(self) -> None:
        await self._pool.close()


# --- what the console has seen and measured ------------------------------------------------

RTT_POINTS = 600  # three samples a probe, a probe every 2 s: ten minutes, more than a chart shows
DIRTY_POINTS = 300  # one sample a second: five minutes

Pair = tuple[str, str]


class Live:
    """The console's picture of the world, fed by workers' messages, read by the screens.
    Every series is a bounded deque, so a console left open for a week stays the same size."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.nodes: dict[str, NodeInventory | None] = {n.name: None for n in config.nodes}
        self.answered_at: dict[str, float] = {}  # node -> monotonic time of its last answer
        self.rtt: dict[Pair, deque[tuple[float, float]]] = {}
        self.rtt_last: dict[Pair, float] = {}
        self.throughput: dict[Pair, ThroughputResult] = {}
        self.dirty: dict[str, deque[DirtyRate]] = {}
        self.errors: dict[str, str] = {}  # "rtt:SRC>DST", "throughput:SRC>DST", "dirty:REF"
        self.busy: dict[str, str] = {}  # ref -> what is happening to it, e.g. "migrating"

    @property
    def all_answered(self) -> bool:
        return all(n is not None for n in self.nodes.values())

    def answered_since(self, moment: float) -> bool:
        """Every node has answered (or been found unreachable) after `moment` (monotonic)."""
        return all(self.answered_at.get(n, 0.0) > moment for n in self.nodes)

    def set_node(self, inventory: NodeInventory) -> None:
        self.nodes[inventory.node] = inventory
        self.answered_at[inventory.node] = time.monotonic()

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
        series = self.rtt.setdefault(pair, deque(maxlen=RTT_POINTS))
        series.extend((s.t, s.rtt_s * 1000) for s in result.samples)
        self.rtt_last[pair] = result.rtt_s
        self.errors.pop(f"rtt:{result.src}>{result.dst}", None)

    def add_dirty(self, ref: str, sample: DirtyRate) -> None:
        self.dirty.setdefault(ref, deque(maxlen=DIRTY_POINTS)).append(sample)
        self.errors.pop(f"dirty:{ref}", None)

    def set_throughput(self, result: ThroughputResult) -> None:
        self.throughput[(result.src, result.dst)] = result
        self.errors.pop(f"throughput:{result.src}>{result.dst}", None)

    def dirty_rate(self, ref: str) -> float | None:
        return mean_dirty_rate(self.dirty.get(ref, ()))

    def measurements(self, container: ContainerInfo, target: str) -> PathMeasurements:
        pair = (container.node, target)
        through = self.throughput.get(pair)
        return PathMeasurements(
            size=container_size(container, self.dirty.get(container.ref, ())),
            dirty_rate=self.dirty_rate(container.ref),
            rtt=self.rtt_last.get(pair),
            bandwidth=through.bytes_per_s if through else None,
        )
