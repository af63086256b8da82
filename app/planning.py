"""What the model plans from, taken from what the console measured: a container's dirty-rate
samples, the path's RTT and throughput, and the plan the engine would make of them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from whimbrel.backends import costs
from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan, plan


@dataclass(frozen=True)
class DirtyRate:
    """One dirty-page sample of a container, as the charts and the model want it."""

    t: float  # the sampling node's clock at the end of the interval (one clock per series)
    pages_per_s: float
    bytes_per_s: float
    state_bytes: float  # what a dump would carry now (writable memory), bytes
    distinct_share: float | None = None  # of it, what a whole dump sends (None: not known)


@dataclass(frozen=True)
class PathMeasurements:
    """What a preview plans from; None where nothing was measured yet."""

    size: float | None = None
    dirty_rate: float | None = None
    rtt: float | None = None
    bandwidth: float | None = None
    distinct_share: float | None = None  # optional: 1 when not measured

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
    return MigrationRequest(container="-", target="-")


def console_request(
    downtime_target_s: float, lazy_restore: bool, container: str = "-", target: str = "-"
) -> MigrationRequest:
    """A request as the console makes it: the engine's defaults with the operator's downtime
    target and restore (an evacuation's template leaves container and target to each move)."""
    return MigrationRequest(
        container=container,
        target=target,
        downtime_target_s=downtime_target_s,
        lazy_restore=lazy_restore,
    )


def mean_dirty_rate(dirty: Iterable[DirtyRate], last: int = 10) -> float | None:
    rates = [d.bytes_per_s for d in dirty][-last:]
    return statistics.fmean(rates) if rates else None


def plan_for(
    measured: PathMeasurements, downtime_target_s: float, lazy_restore: bool = False
) -> Plan | None:
    """The plan the engine would make from these measurements (its costs, its round cap, the
    restore the console asks for), or None until every input has been measured."""
    if measured.missing:
        return None
    assert (
        measured.size is not None and measured.dirty_rate is not None and measured.rtt is not None
    )
    assert measured.bandwidth is not None and measured.bandwidth > 0
    return plan(
        costs.DEFAULT_COSTS.model_inputs(  # looked up at each plan: tests swap the costs
            size=measured.size,
            dirty_rate=measured.dirty_rate,
            bandwidth=measured.bandwidth,
            rtt=measured.rtt,
            downtime_target=downtime_target_s,
            max_rounds=engine_defaults().max_rounds,
            lazy_restore=lazy_restore,
            distinct_share=measured.distinct_share or 1.0,
        )
    )
