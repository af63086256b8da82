"""The console's view of the world: what it asks of the clusters, as one small Protocol.

The app depends on `Backend` only; `SSHBackend` implements it over one SessionPool and the
backends (inventory, probes, dirty-rate sampling, the migration engine and the evacuation
runner, its history records, the doctor).
All network work happens here, never in widgets. tests/console/fake_backend.py is the only
other implementation, for deterministic snapshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Protocol

from whimbrel.app.history_records import HistoryRecord, read_history
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.planning import DirtyRate, console_request, engine_defaults
from whimbrel.backends.config import Config
from whimbrel.backends.dirty import DirtySample, distinct_share
from whimbrel.backends.doctor import NodeReport, examine
from whimbrel.backends.engine import Migration, MigrationRequest, recover
from whimbrel.backends.evacuation import Evacuation, EvacuationEvent, EvacuationPlan
from whimbrel.backends.events import MigrationEvent
from whimbrel.backends.inventory import ContainerInfo, NodeInventory, watch_inventory
from whimbrel.backends.probes import (
    RttResult,
    ThroughputResult,
    probe_rtt,
    probe_throughput,
    stream_dirty,
)
from whimbrel.backends.ssh import SessionPool

INVENTORY_TIMEOUT_S = 6.0
RTT_SAMPLES = 3  # per probe: the chart gets a point per sample, the probe stays under a second


class MigrationHandle(Protocol):
    def events(self) -> AsyncIterator[MigrationEvent]: ...

    def abort(self) -> None: ...


class EvacuationHandle(Protocol):
    """An evacuation's migrations at once: their events merged, each tagged with its
    container, then EvacuationFinished; abort() starts no more and rolls the running ones back
    at their next round boundary."""

    def events(self) -> AsyncIterator[EvacuationEvent]: ...

    def abort(self) -> None: ...


class Backend(Protocol):
    """Everything the console asks of the world. Async methods run in the app's event loop."""

    config: Config

    def inventories(self, node: str, every_s: float) -> AsyncIterator[NodeInventory]:
        """The node's containers now, then again `every_s` after each answer, for as long as it
        is iterated; a node that does not answer is an answer too (unreachable, with why)."""
        ...

    async def doctor(self, node: str) -> NodeReport:
        """Every readiness check of the node, as `whimbrel doctor` runs them."""
        ...

    async def rtt(self, src: str, dst: str) -> RttResult: ...

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult: ...

    def dirty(self, container: ContainerInfo, interval_s: float) -> AsyncIterator[DirtyRate]: ...

    def migrate(self, order: MigrationOrder) -> MigrationHandle: ...

    def evacuate(self, plan: EvacuationPlan, template: MigrationRequest) -> EvacuationHandle:
        """Run the plan's moves, each a request made from `template` (the console's downtime
        target and restore) with its container, target and the path as planned."""
        ...

    def history(self) -> list[HistoryRecord]:
        """Blocking file reads: call it from a thread worker."""
        ...

    async def recover(self) -> list[str]:
        """Settle migrations an earlier whimbrel left unfinished; one line per migration."""
        ...

    async def close(self) -> None: ...


# --- the real thing --------------------------------------------------------------------------


class _EngineMigration:
    """Adapts the engine's Migration to MigrationHandle."""

    def __init__(self, pool: SessionPool, order: MigrationOrder) -> None:
        request = console_request(
            order.downtime_target_s, order.lazy_restore, order.container.ref, order.target
        )
        self._migration = Migration(pool, request)

    def events(self) -> AsyncIterator[MigrationEvent]:
        return self._migration.events()

    def abort(self) -> None:
        self._migration.abort()


class SSHBackend:
    """The Backend over SSH: one SessionPool for the console's whole life."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool = SessionPool(config)

    def inventories(self, node: str, every_s: float) -> AsyncIterator[NodeInventory]:
        return watch_inventory(self._pool, self.config.node(node), every_s, INVENTORY_TIMEOUT_S)

    async def doctor(self, node: str) -> NodeReport:
        return await examine(self._pool, self.config.node(node))

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
                        distinct_share=distinct_share(record),
                    )
                elif record.get("type") == "start":
                    page_size = int(record.get("page_size", page_size))

    def migrate(self, order: MigrationOrder) -> MigrationHandle:
        return _EngineMigration(self._pool, order)

    def evacuate(self, plan: EvacuationPlan, template: MigrationRequest) -> EvacuationHandle:
        return Evacuation(self._pool, plan, template)

    def history(self) -> list[HistoryRecord]:
        return read_history()

    async def recover(self) -> list[str]:
        return [found.text for found in await recover(self._pool)]

    async def close(self) -> None:
        await self._pool.close()
