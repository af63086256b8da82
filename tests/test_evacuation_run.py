"""The evacuation's runner: how many run at once, in what order, what one failure or an abort
does to the others (stand-in migrations; the lab test runs real ones)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from whimbrel.backends.costs import Costs
from whimbrel.backends.evacuation import (
    Destination,
    Evacuation,
    EvacuationFinished,
    EvacuationPlan,
    Leaving,
    MoveEvent,
    MoveStarted,
    Route,
    place,
    plan_evacuation,
)
from whimbrel.backends.events import LogLine, MigrationFinished
from whimbrel.backends.migration_request import MigrationRequest

TEMPLATE = MigrationRequest("-", "-")


def _plan(names: list[str], concurrency: int) -> EvacuationPlan:
    # Sizes falling with the names' order: the plan launches them in that order.
    leaving = [
        Leaving(f"east-1/{n}", "east-1", (len(names) - i) * 2**26, 0.0) for i, n in enumerate(names)
    ]
    placement = place(leaving, [Destination("west-1")])
    routes = {p: Route(0.01, 1e8) for p in placement.routes(leaving)}
    return plan_evacuation(leaving, placement, routes, TEMPLATE, Costs(), concurrency)


class FakeMigration:
    """Logs a line, waits its turn, then finishes as told; counts how many run at once."""

    running = 0
    most = 0
    started: ClassVar[list[str]] = []
    paths: ClassVar[dict[str, Any]] = {}
    failing: ClassVar[set[str]] = set()

    def __init__(self, pool: Any, request: MigrationRequest) -> None:
        self.request = request
        self.aborted = False
        FakeMigration.paths[request.container] = request.path

    def abort(self) -> None:
        self.aborted = True

    async def events(self) -> AsyncIterator[Any]:
        cls = FakeMigration
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        cls.started.append(self.request.container)
        yield LogLine("preflight", 0.0)
        await asyncio.sleep(0.01)
        ok = self.request.container not in cls.failing and not self.aborted
        cls.running -= 1
        yield MigrationFinished(
            ok=ok,
            container=self.request.container,
            src="east-1",
            dst=self.request.target,
            running_on=self.request.target if ok else "east-1",
            mode="iterative",
            rounds=1,
            downtime_s=0.5 if ok else None,
            predicted_downtime_s=0.5,
            total_time_s=0.01,
            predicted_total_time_s=0.01,
            bytes_sent=1,
            predicted_bytes=1,
            error=None if ok else "rolled back" if self.aborted else "boom",
        )


def _run(plan: EvacuationPlan, **options: Any) -> tuple[list[Any], EvacuationFinished]:
    FakeMigration.running = FakeMigration.most = 0
    FakeMigration.started = []
    evacuation = Evacuation(None, plan, TEMPLATE, migration=FakeMigration, **options)  # type: ignore[arg-type]

    async def collect() -> list[Any]:
        return [item async for item in evacuation.events()]

    items = asyncio.run(collect())
    assert isinstance(items[-1], EvacuationFinished)
    return items[:-1], items[-1]


def test_no_more_than_the_planned_number_run_at_once_in_the_plans_order() -> None:
    FakeMigration.failing = set()
    plan = _plan(["a", "b", "c", "d", "e"], 2)
    items, finished = _run(plan)
    assert FakeMigration.most == 2
    assert FakeMigration.started == [m.ref for m in plan.moves]
    # Each migration is given the path as the plan measured and shared it: it probes nothing.
    assert all(FakeMigration.paths[m.ref] == m.path for m in plan.moves)
    assert plan.moves[0].path.bandwidth == 1e8 / 2
    assert finished.ok and [r.ref for r in finished.results] == [m.ref for m in plan.moves]
    assert all(r.running_on == "west-1" and r.duration_s is not None for r in finished.results)
    started = [i.ref for i in items if isinstance(i, MoveStarted)]
    assert started == [m.ref for m in plan.moves]
    tagged = [i for i in items if isinstance(i, MoveEvent)]
    assert {i.ref for i in tagged} == set(started) and len(tagged) == 10


def test_one_failure_leaves_the_others_moving() -> None:
    FakeMigration.failing = {"east-1/b"}
    _, finished = _run(_plan(["a", "b", "c"], 1))
    assert not finished.ok
    assert [(r.ref, r.ok) for r in finished.results] == [
        ("east-1/a", True),
        ("east-1/b", False),
        ("east-1/c", True),
    ]
    assert finished.results[1].error == "boom" and finished.results[1].running_on == "east-1"


def test_stop_on_failure_starts_nothing_after_a_failure() -> None:
    FakeMigration.failing = {"east-1/a"}
    _, finished = _run(_plan(["a", "b", "c"], 1), stop_on_failure=True)
    assert FakeMigration.started == ["east-1/a"]
    b, c = finished.results[1:]
    assert not b.ok and b.started_s is None and b.running_on == "east-1"
    assert b.error == "not started: east-1/a failed" and c.error == b.error


def test_an_abort_starts_nothing_more_and_rolls_back_what_runs() -> None:
    FakeMigration.failing = set()
    plan = _plan(["a", "b", "c"], 2)
    evacuation = Evacuation(None, plan, TEMPLATE, migration=FakeMigration)  # type: ignore[arg-type]
    FakeMigration.started = []

    async def run() -> EvacuationFinished:
        async for item in evacuation.events():
            if isinstance(item, MoveStarted) and item.ref == plan.moves[1].ref:
                evacuation.abort()
            if isinstance(item, EvacuationFinished):
                return item
        raise AssertionError("no end")

    finished = asyncio.run(run())
    assert len(FakeMigration.started) == 2
    assert [r.error for r in finished.results] == [
        "rolled back",
        "rolled back",
        "not started: the evacuation was aborted",
    ]
