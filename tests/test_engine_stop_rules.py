"""Every pre-copy stop rule, on measured rounds alone: the model's plan, the residual still
falling (one round more), the residual no longer shrinking, the round cap and fixed rounds."""

from __future__ import annotations

from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.model import MeasuredRound, ModelInputs, Plan, replan
from whimbrel.backends.stop_rules import STILL_FALLING, STOPPED_SHRINKING, after_round

MB = 1e6
INPUTS = ModelInputs(
    size=64 * MB, dirty_rate=3.8 * MB, bandwidth=12.5 * MB, rtt=0.005, round_trips=2,
    round_overhead=0.45, dump_time=0.2, restore_time=0.6,
)  # fmt: skip
FALLING = (64, 22, 8.8, 4.9, 3.6)  # 1.3 MB off = 0.1 s, over 5% of a ~1 s floor
FLAT = (64, 22, 8.8, 2.1, 2.0)


def _rounds(*sizes: float) -> list[MeasuredRound]:
    return [MeasuredRound(v * MB, 0.3 + v / 12.5, 3.8 * MB, 12.5 * MB) for v in sizes]


def _wants(done: list[MeasuredRound], more: int) -> Plan:
    """A re-plan that wants `more` rounds (the rules read only its count and its floor)."""
    return replan(INPUTS, done, rounds=more)


def _request(**kw: object) -> MigrationRequest:
    return MigrationRequest("c", "n", **kw)  # type: ignore[arg-type]


def test_the_model_s_own_plan_for_this_case_is_to_stop() -> None:
    # The cases below rest on it: without the engine's rules the model stops here.
    assert replan(INPUTS, _rounds(*FALLING)).rounds == 0
    assert replan(INPUTS, _rounds(*FLAT)).rounds == 0


def test_a_residual_still_falling_by_more_than_the_tolerance_earns_one_more_round() -> None:
    done = _rounds(*FALLING)
    decision = after_round(_request(), INPUTS, done, replan(INPUTS, done))
    assert not decision.stop and decision.log == STILL_FALLING
    assert decision.plan.rounds == 1 and decision.plan.per_round[0].index == len(done)


def test_a_residual_that_has_flattened_stops_where_the_model_says() -> None:
    done = _rounds(*FLAT)
    decision = after_round(_request(), INPUTS, done, replan(INPUTS, done))
    assert decision.stop and decision.log is None
    assert decision.reason == "the model wants no more rounds"


def test_still_falling_is_latency_aware_and_judged_from_the_third_round_on() -> None:
    done = _rounds(*FALLING)
    phaul = after_round(_request(policy="phaul"), INPUTS, done, replan(INPUTS, done))
    assert phaul.stop and phaul.log is None
    early = after_round(_request(), INPUTS, done[:2], _wants(done[:2], 0))
    assert early.stop and early.log is None


def test_still_falling_never_passes_the_round_cap() -> None:
    done = _rounds(*FALLING)
    decision = after_round(_request(max_rounds=len(done)), INPUTS, done, replan(INPUTS, done))
    assert decision.stop and decision.log is None


def test_a_residual_that_did_not_shrink_stops_the_rounds_though_the_model_wants_more() -> None:
    done = _rounds(64, 9.0, 9.0)
    decision = after_round(_request(), INPUTS, done, _wants(done, 3))
    assert decision.stop and decision.log == STOPPED_SHRINKING
    # Judged from round 1 on: round 1 no smaller than round 0 stops too.
    first = _rounds(64, 64)
    assert after_round(_request(), INPUTS, first, _wants(first, 3)).log == STOPPED_SHRINKING


def test_a_residual_that_shrinks_a_little_is_left_to_the_model() -> None:
    done = _rounds(64, 9.0, 8.9)
    decision = after_round(_request(), INPUTS, done, _wants(done, 3))
    assert not decision.stop and decision.log is None


def test_stopped_shrinking_is_a_latency_aware_rule() -> None:
    done = _rounds(64, 9.0, 9.0)
    decision = after_round(_request(policy="phaul"), INPUTS, done, _wants(done, 3))
    assert not decision.stop


def test_the_round_cap_stops_a_model_that_wants_more() -> None:
    done = _rounds(64, 22, 8.8)
    assert not after_round(_request(max_rounds=4), INPUTS, done, _wants(done, 2)).stop
    capped = after_round(_request(max_rounds=3), INPUTS, done, _wants(done, 2))
    assert capped.stop and capped.reason == "the round cap is reached"


def test_fixed_rounds_run_to_their_count_whatever_the_rules_say() -> None:
    flat = _rounds(64, 9.0, 9.0)  # would stop: no shrinking, and the model wants none
    decision = after_round(_request(rounds=4), INPUTS, flat, _wants(flat, 0))
    assert not decision.stop and decision.log is None
    assert after_round(_request(rounds=3), INPUTS, flat, _wants(flat, 0)).stop
