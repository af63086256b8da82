"""The evacuation planner: placement by memory, the link shared, the timeline and the auto
concurrency (pure logic; the lab test proves the evacuation itself)."""

from __future__ import annotations

import pytest

from whimbrel.backends.costs import Costs
from whimbrel.backends.errors import UsageError
from whimbrel.backends.evacuation import (
    Destination,
    Leaving,
    Placement,
    Route,
    place,
    plan_evacuation,
)
from whimbrel.backends.migration_request import MigrationRequest

MiB = 2**20
GiB = 2**30
COSTS = Costs()
TEMPLATE = MigrationRequest("-", "-")
LINK = Route(rtt=0.04, bandwidth=25e6)


def _leaving(name: str, size_mib: float, dirty_mib: float = 0.5) -> Leaving:
    return Leaving(f"east-1/{name}", "east-1", size_mib * MiB, dirty_mib * MiB)


def _routes(placement: Placement, leaving: list[Leaving]) -> dict[tuple[str, str], Route]:
    return {pair: LINK for pair in placement.routes(leaving)}


def test_the_largest_goes_first_to_the_target_with_the_most_memory_left() -> None:
    leaving = [_leaving("small", 100), _leaving("big", 900), _leaving("mid", 500)]
    placement = place(leaving, [Destination("west-1", 2 * GiB), Destination("west-2", 1.5 * GiB)])
    assert placement.targets == {
        "east-1/big": "west-1",  # 1.8 GiB usable there against 1.35
        "east-1/mid": "west-2",  # west-1 has 0.9 GiB left now, west-2 1.35
        "east-1/small": "west-1",
    }
    assert placement.stays == ()


def test_a_container_no_target_has_room_for_stays_with_the_reason() -> None:
    leaving = [_leaving("huge", 4096), _leaving("fits", 100)]
    placement = place(leaving, [Destination("west-1", 1 * GiB)])
    assert placement.targets == {"east-1/fits": "west-1"}
    [stay] = placement.stays
    assert stay.ref == "east-1/huge" and "memory to spare" in stay.reason


def test_unknown_memory_limits_nothing_and_ties_keep_config_order() -> None:
    placement = place([_leaving("a", 10)], [Destination("west-1"), Destination("west-2")])
    assert placement.targets == {"east-1/a": "west-1"}


def test_no_target_at_all_leaves_every_container_where_it_is() -> None:
    placement = place([_leaving("a", 10)], [])
    assert placement.targets == {} and placement.stays[0].reason == "no target node"


def test_one_at_a_time_is_the_migrations_back_to_back_each_with_the_whole_link() -> None:
    leaving = [_leaving("a", 200), _leaving("b", 100)]
    placement = place(leaving, [Destination("west-1")])
    plan = plan_evacuation(leaving, placement, _routes(placement, leaving), TEMPLATE, COSTS, 1)
    first, second = plan.moves
    assert (first.ref, first.start_s) == ("east-1/a", 0.0)  # the longest first
    assert second.start_s == pytest.approx(first.end_s)
    assert first.duration_s == pytest.approx(first.setup_s + first.plan.total_time_s)
    assert plan.total_time_s == pytest.approx(plan.one_by_one_s)


def test_migrations_at_once_plan_their_rounds_on_a_share_of_the_link() -> None:
    leaving = [_leaving("a", 200, dirty_mib=4), _leaving("b", 200, dirty_mib=4)]
    placement = place(leaving, [Destination("west-1")])
    routes = _routes(placement, leaving)
    alone = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS, 1)
    shared = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS, 2)
    for ref in ("east-1/a", "east-1/b"):
        assert shared.move(ref).plan.inputs.bandwidth < alone.move(ref).plan.inputs.bandwidth
        assert shared.move(ref).plan.downtime_s > alone.move(ref).plan.downtime_s
    # Both start at once; their setups overlap, and their bytes share the link, so together
    # they end sooner than one after the other but no sooner than the bytes allow.
    assert [m.start_s for m in shared.moves] == [0.0, 0.0]
    assert shared.total_time_s < alone.total_time_s
    link_s = sum(m.plan.bytes_sent for m in shared.moves) / LINK.bandwidth
    assert shared.total_time_s > link_s


def test_the_next_migration_starts_when_a_slot_frees() -> None:
    leaving = [_leaving(n, s) for n, s in (("a", 300), ("b", 200), ("c", 100))]
    placement = place(leaving, [Destination("west-1")])
    plan = plan_evacuation(leaving, placement, _routes(placement, leaving), TEMPLATE, COSTS, 2)
    a, b, c = (plan.move(f"east-1/{n}") for n in "abc")
    assert a.start_s == b.start_s == 0.0
    assert c.start_s == pytest.approx(min(a.end_s, b.end_s))


def test_auto_takes_the_fastest_concurrency_that_keeps_every_downtime() -> None:
    leaving = [_leaving(f"c{i}", 64, dirty_mib=0.1) for i in range(5)]
    placement = place(leaving, [Destination("west-1")])
    routes = _routes(placement, leaving)
    auto = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS)
    fixed = {
        c: plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS, c).total_time_s
        for c in (1, 2, 3)
    }
    assert auto.concurrency == 3  # light containers: setups overlap, little on the link
    assert auto.total_time_s == pytest.approx(min(fixed.values()))


def test_auto_keeps_one_at_a_time_where_sharing_would_stretch_a_downtime() -> None:
    # Dirtying close to the whole link: on half of it the rounds no longer converge.
    leaving = [_leaving("a", 512, dirty_mib=18), _leaving("b", 512, dirty_mib=18)]
    placement = place(leaving, [Destination("west-1")])
    routes = _routes(placement, leaving)
    auto = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS)
    two = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS, 2)
    alone = plan_evacuation(leaving, placement, routes, TEMPLATE, COSTS, 1)
    assert two.move("east-1/a").plan.downtime_s > 1.5 * alone.move("east-1/a").plan.downtime_s
    assert auto.concurrency == 1


def test_a_concurrency_out_of_range_is_a_usage_error() -> None:
    leaving = [_leaving("a", 10)]
    placement = place(leaving, [Destination("west-1")])
    with pytest.raises(UsageError, match="between 1 and"):
        plan_evacuation(leaving, placement, _routes(placement, leaving), TEMPLATE, COSTS, 0)


def test_a_path_not_measured_is_a_usage_error() -> None:
    leaving = [_leaving("a", 10)]
    placement = place(leaving, [Destination("west-1")])
    with pytest.raises(UsageError, match="east-1 -> west-1"):
        plan_evacuation(leaving, placement, {}, TEMPLATE, COSTS, 1)
