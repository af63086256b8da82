"""The engine's own stop checks on top of the model's plan, on measured rounds alone."""

from __future__ import annotations

from whimbrel.backends.engine import MigrationRequest, _still_falling
from whimbrel.backends.model import MeasuredRound, ModelInputs, replan

MB = 1e6
INPUTS = ModelInputs(
    size=64 * MB, dirty_rate=3.8 * MB, bandwidth=12.5 * MB, rtt=0.005, round_trips=2,
    round_overhead=0.45, dump_time=0.2, restore_time=0.6,
)  # fmt: skip


def _rounds(*sizes: float) -> list[MeasuredRound]:
    return [MeasuredRound(v * MB, 0.3 + v / 12.5, 3.8 * MB, 12.5 * MB) for v in sizes]


def test_a_residual_still_falling_by_more_than_the_tolerance_earns_one_more_round() -> None:
    done = _rounds(64, 22, 8.8, 4.9, 3.6)  # 1.3 MB off = 0.1 s, over 5% of a ~1 s floor
    plan = replan(INPUTS, done)
    assert _still_falling(MigrationRequest("c", "n"), done, plan)
    one_more = replan(INPUTS, done, rounds=1)
    assert one_more.rounds == 1 and one_more.per_round[0].index == len(done)


def test_a_residual_that_has_flattened_stops() -> None:
    done = _rounds(64, 22, 8.8, 2.1, 2.0)
    assert not _still_falling(MigrationRequest("c", "n"), done, replan(INPUTS, done))


def test_only_latency_aware_and_only_after_two_precopy_rounds_past_round_zero() -> None:
    done = _rounds(64, 22, 8.8, 4.9, 3.6)
    plan = replan(INPUTS, done)
    assert not _still_falling(MigrationRequest("c", "n", policy="phaul"), done, plan)
    assert not _still_falling(MigrationRequest("c", "n"), done[:2], replan(INPUTS, done[:2]))
