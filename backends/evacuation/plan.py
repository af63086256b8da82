"""An evacuation's plan: where each container goes, in what order, how many at once, and what
the model predicts with the link shared. Pure: measured numbers in, a plan out, no I/O.

- Placement: largest container first, each to the target with the most memory left (its
  MemAvailable less what the plan already put there, less a headroom); a container no target
  has room for stays, with the reason.
- The link is shared: with c migrations at once, each plans its rounds with 1/c of its path's
  throughput (the lab's WAN, like an uplink, is one line for every connection across it)
  against its own dirty rate: together they must carry the sum of the dirty rates on one link.
  Its mode, rounds, bytes and downtime come from that plan (the worst case: all c sending).
- The timeline is simulated: a migration is its setup (preflight and cleanup,
  Costs.setup_time: little of it on the link), then its plan's bytes, sent at an equal share
  of the link among the migrations sending at that moment, then the rest of its plan's time
  (dumps, round trips, the restore). They start longest first, the next as a slot frees (the
  runner does exactly that); the evacuation's total is when the last one ends.
- Concurrency `auto`: the least total time over 1..MAX_AUTO_CONCURRENCY, among the choices
  that keep every container's downtime within the target or AUTO_DOWNTIME_GROWTH of its
  downtime alone on the link; within AUTO_TIE of the best, fewer at once wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from whimbrel.backends import model
from whimbrel.backends.costs import Costs
from whimbrel.backends.errors import UsageError
from whimbrel.backends.migration_request import KnownPath, MigrationRequest
from whimbrel.backends.preflight import RunMode, choose_plan, model_inputs_for
from whimbrel.backends.units import format_size

# Concurrent dumps share the source's cores, and each migration's stripes open SSH
# connections to the target (sshd drops them at random past MaxStartups, 10 by default).
MAX_AUTO_CONCURRENCY = 3
MAX_CONCURRENCY = 8
MEMORY_HEADROOM = 0.10  # of a target's available memory, never planned for
AUTO_DOWNTIME_GROWTH = 1.5
AUTO_TIE = 0.03


@dataclass(frozen=True)
class Leaving:
    """A container to move, as measured."""

    ref: str  # NODE/NAME
    node: str
    size: float  # bytes a dump carries
    dirty_rate: float  # bytes/s
    distinct_share: float = 1.0


@dataclass(frozen=True)
class Destination:
    node: str
    memory_available: float | None = None  # bytes; None: not known, no limit applied


@dataclass(frozen=True)
class Route:
    """A path's measurements: the whole link, before any sharing."""

    rtt: float  # s
    bandwidth: float  # bytes/s


@dataclass(frozen=True)
class Stay:
    """A container the evacuation leaves where it is, and why."""

    ref: str
    reason: str


@dataclass(frozen=True)
class Placement:
    targets: Mapping[str, str]  # container ref -> target node
    stays: tuple[Stay, ...] = ()

    def routes(self, leaving: Iterable[Leaving]) -> list[tuple[str, str]]:
        """The (source, target) paths the placed containers take, each once, sorted."""
        return sorted({(c.node, self.targets[c.ref]) for c in leaving if c.ref in self.targets})


@dataclass(frozen=True)
class Move:
    ref: str
    src: str
    target: str
    mode: RunMode
    plan: model.Plan  # the engine's plan, on the link's share
    path: KnownPath  # the path's RTT and that share: the migration probes neither again
    setup_s: float  # the migration's work outside the plan (preflight, cleanup)
    start_s: float  # predicted, from the evacuation's start
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.ref,
            "from": self.src,
            "to": self.target,
            "mode": self.mode,
            "rounds": self.plan.rounds,
            "downtime_s": self.plan.downtime_s,
            "duration_s": self.duration_s,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "bytes": self.plan.bytes_sent,
        }


@dataclass(frozen=True)
class EvacuationPlan:
    moves: tuple[Move, ...]  # in launch order
    stays: tuple[Stay, ...]
    concurrency: int
    one_by_one_s: float  # the same moves one after another, each with the whole link

    @property
    def total_time_s(self) -> float:
        return max((m.end_s for m in self.moves), default=0.0)

    def move(self, ref: str) -> Move:
        return next(m for m in self.moves if m.ref == ref)

    def to_json(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "total_time_s": self.total_time_s,
            "one_by_one_s": self.one_by_one_s,
            "moves": [m.to_json() for m in self.moves],
            "stays": [{"container": s.ref, "reason": s.reason} for s in self.stays],
        }


def place(leaving: Sequence[Leaving], destinations: Sequence[Destination]) -> Placement:
    """Largest first, each to the destination with the most memory left (config order on a
    tie); one that fits nowhere stays, with the reason."""
    if not destinations:
        return Placement({}, tuple(Stay(c.ref, "no target node") for c in leaving))
    free = {
        d.node: math.inf
        if d.memory_available is None
        else d.memory_available * (1 - MEMORY_HEADROOM)
        for d in destinations
    }
    order = {d.node: i for i, d in enumerate(destinations)}
    targets: dict[str, str] = {}
    stays: list[Stay] = []
    for c in sorted(leaving, key=lambda c: (-c.size, c.ref)):
        best = max(free, key=lambda node: (free[node], -order[node]))
        if free[best] < c.size:
            stays.append(
                Stay(
                    c.ref,
                    f"no target has {format_size(c.size)} of memory to spare "
                    f"(the most left: {format_size(free[best])} on {best})",
                )
            )
            continue
        targets[c.ref] = best
        free[best] -= c.size
    return Placement(targets, tuple(stays))


def plan_evacuation(
    leaving: Sequence[Leaving],
    placement: Placement,
    routes: Mapping[tuple[str, str], Route],
    template: MigrationRequest,
    costs: Costs,
    concurrency: int | None = None,
) -> EvacuationPlan:
    """The plan at `concurrency` migrations at once, or the auto choice (None)."""
    placed = [c for c in leaving if c.ref in placement.targets]
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    missing = [p for p in placement.routes(placed) if p not in routes]
    if missing:
        raise UsageError(f"no measurement of the path {' -> '.join(missing[0])}")

    def at(c: int) -> tuple[Move, ...]:
        return _schedule(placed, placement, routes, template, costs, c)

    alone = at(1)
    one_by_one_s = max((m.end_s for m in alone), default=0.0)
    if concurrency is not None:
        moves = alone if concurrency == 1 else at(concurrency)
        return EvacuationPlan(moves, placement.stays, concurrency, one_by_one_s)
    solo_downtime = {m.ref: m.plan.downtime_s for m in alone}
    options = [(1, alone)]
    for c in range(2, min(len(placed), MAX_AUTO_CONCURRENCY) + 1):
        moves = at(c)
        if all(
            m.plan.downtime_s
            <= max(template.downtime_target_s, AUTO_DOWNTIME_GROWTH * solo_downtime[m.ref])
            for m in moves
        ):
            options.append((c, moves))
    best = min(_total(moves) for _, moves in options)
    c, moves = next(o for o in options if _total(o[1]) <= best * (1 + AUTO_TIE))
    return EvacuationPlan(moves, placement.stays, c, one_by_one_s)


def _total(moves: Sequence[Move]) -> float:
    return max((m.end_s for m in moves), default=0.0)


@dataclass(frozen=True)
class _Work:
    """A move as the timeline sees it: setup, then bytes on the link, then the rest."""

    move: Move
    link_bytes: float
    link_rate: float  # bytes/s with the whole link
    tail_s: float


def _schedule(
    placed: Sequence[Leaving],
    placement: Placement,
    routes: Mapping[tuple[str, str], Route],
    template: MigrationRequest,
    costs: Costs,
    concurrency: int,
) -> tuple[Move, ...]:
    """Every move planned on 1/share of its link, then timed (see the module)."""
    share = max(1, min(concurrency, len(placed)))
    work = []
    for c in placed:
        target = placement.targets[c.ref]
        route = routes[(c.node, target)]
        request = replace(template, container=c.ref, target=target)
        shared = _inputs(costs, request, c, route.rtt, route.bandwidth / share)
        mode, plan = choose_plan(request, shared)
        setup = costs.setup_time(route.rtt)
        on_link = plan.bytes_sent / shared.bandwidth
        path = KnownPath(route.rtt, route.bandwidth / share)
        move = Move(c.ref, c.node, target, mode, plan, path, setup, 0.0, setup + plan.total_time_s)
        whole = _inputs(costs, request, c, route.rtt, route.bandwidth).bandwidth
        work.append(_Work(move, plan.bytes_sent, whole, max(0.0, plan.total_time_s - on_link)))
    order = sorted(work, key=lambda w: (-w.move.duration_s, w.move.ref))
    return tuple(_timeline(order, concurrency))


def _inputs(
    costs: Costs, request: MigrationRequest, c: Leaving, rtt: float, bandwidth: float
) -> model.ModelInputs:
    return model_inputs_for(
        costs,
        request,
        size=c.size,
        dirty_rate=c.dirty_rate,
        distinct_share=c.distinct_share,
        bandwidth=bandwidth,
        rtt_s=rtt,
    )


@dataclass
class _Running:
    work: _Work
    start_s: float
    phase: int = 0  # 0 setup, 1 on the link, 2 the tail, 3 done
    left: float = 0.0  # seconds, or bytes on the link

    def advance(self) -> None:
        """On to the next phase while this one has nothing left."""
        while self.phase < 3 and self.left <= 1e-9:
            self.phase += 1
            self.left = (0.0, self.work.link_bytes, self.work.tail_s, 0.0)[self.phase]


def _timeline(order: Sequence[_Work], concurrency: int) -> list[Move]:
    """Start, end of each move: at most `concurrency` running, each in turn its setup, its
    bytes at an equal share of the link among those sending, its tail."""
    waiting = list(order)
    running: list[_Running] = []
    timed: list[Move] = []
    t = 0.0
    while waiting or running:
        while waiting and len(running) < concurrency:
            w = waiting.pop(0)
            running.append(_Running(w, t, left=w.move.setup_s))
        for r in running:
            r.advance()
        ended = [r for r in running if r.phase == 3]
        for r in ended:
            running.remove(r)
            timed.append(replace(r.work.move, start_s=r.start_s, end_s=t))
        if ended or not running:
            continue  # a freed slot is taken at once
        sending = sum(1 for r in running if r.phase == 1)
        # What each one's `left` loses per second: bytes at its share of the link, or time.
        speeds = [r.work.link_rate / sending if r.phase == 1 else 1.0 for r in running]
        step = min(r.left / v for r, v in zip(running, speeds, strict=True))
        for r, v in zip(running, speeds, strict=True):
            r.left -= step * v
        t += step
    return sorted(timed, key=lambda m: (m.start_s, m.ref))
