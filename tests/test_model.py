"""The latency-aware pre-copy model: semantics, start and stop conditions, policies, re-planning."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from whimbrel.backends.errors import UsageError
from whimbrel.backends.model import (
    POLICIES,
    MeasuredRound,
    ModelInputError,
    ModelInputs,
    compare,
    evaluate,
    floor_bytes,
    grid,
    plan,
    replan,
    rounds_closed_form,
    volumes,
)

MiB = 2**20
MB = 1e6

# 512 MiB dirtied at 8 MiB/s over 200 Mbit/s: the README example.
EXAMPLE = ModelInputs(size=512 * MiB, dirty_rate=8 * MiB, bandwidth=25e6, rtt=0.05)


def replace_example(**changes: float) -> ModelInputs:
    return replace(EXAMPLE, **changes)  # validated again, like any new inputs


def test_worked_example_follows_the_fixed_semantics_exactly() -> None:
    # lambda = 0.1: V = 100, 11, 2.1 MB; downtime(n) = 0.5 + V_n/B + 0.05 + 0.25.
    inputs = ModelInputs(
        size=100 * MB,
        dirty_rate=10 * MB,
        bandwidth=100 * MB,
        rtt=0.1,
        dump_time=0.5,
        restore_time=0.25,
        downtime_target=0.83,
    )
    p = plan(inputs)
    assert p.verdict == "iterate"
    assert p.rounds == 2
    assert [r.bytes for r in p.per_round] == pytest.approx([100 * MB, 11 * MB, 2.1 * MB])
    assert [r.seconds for r in p.per_round] == pytest.approx([1.1, 0.21, 0.821])
    assert [r.final for r in p.per_round] == [False, False, True]
    assert p.downtime_s == pytest.approx(0.821)
    assert p.total_time_s == pytest.approx(1.1 + 0.21 + 0.821)
    assert p.bytes_sent == pytest.approx(113.1 * MB)
    assert p.floor_bytes == pytest.approx(10 * MB * 0.1 / 0.9)
    assert p.meets_target
    assert rounds_closed_form(inputs) == 2


def test_stop_and_copy_is_round_zero_sending_all_state_while_stopped() -> None:
    p = evaluate(replace_example(dump_time=0.1, restore_time=0.2), 0)
    assert p.verdict == "stop-and-copy"
    assert [(r.bytes, r.final) for r in p.per_round] == [(512 * MiB, True)]
    assert p.downtime_s == pytest.approx(0.1 + 512 * MiB / 25e6 + 0.025 + 0.2)
    assert p.total_time_s == p.downtime_s


def test_a_state_of_repeated_pages_sends_only_its_distinct_share() -> None:
    # The data path sends a repeated page once: a quarter of the state's pages distinct, a
    # quarter of it crosses the link in round 0 or a stop-and-copy.
    quarter = replace_example(dump_time=0.1, restore_time=0.2, distinct_share=0.25)
    stop = evaluate(quarter, 0)
    assert stop.bytes_sent == pytest.approx(128 * MiB)
    assert stop.downtime_s == pytest.approx(0.1 + 128 * MiB / 25e6 + 0.025 + 0.2)
    iterating = evaluate(quarter, 2)
    assert iterating.per_round[0].bytes == pytest.approx(128 * MiB)
    assert (
        iterating.per_round[0].seconds
        < evaluate(replace(quarter, distinct_share=1.0), 2).per_round[0].seconds
    )


def test_start_condition_flips_from_iterate_to_stop_and_copy_as_rtt_grows() -> None:
    # 1 MiB dirtied at 8 MiB/s: one round of 1 MiB/B + RTT dirties 1 MiB once RTT ~ 83 ms.
    short = plan(ModelInputs(size=MiB, dirty_rate=8 * MiB, bandwidth=25e6, rtt=0.010))
    long = plan(ModelInputs(size=MiB, dirty_rate=8 * MiB, bandwidth=25e6, rtt=0.150))
    assert short.verdict == "iterate" and short.rounds >= 1
    assert long.verdict == "stop-and-copy" and long.rounds == 0
    assert "round trips" in long.reason and "cannot beat stop-and-copy" in long.reason
    # Iterating at the long RTT really would have been worse, for every n.
    worse = [evaluate(long.inputs, n).downtime_s for n in range(1, 10)]
    assert min(worse) >= long.downtime_s


def test_dirty_rate_at_or_above_throughput_means_stop_and_copy_with_reason() -> None:
    p = plan(replace_example(dirty_rate=25e6))
    assert p.verdict == "stop-and-copy"
    assert "not below the throughput" in p.reason
    assert math.isinf(p.floor_bytes)
    assert p.to_json()["floor_bytes"] is None


def test_latency_blind_over_iterates_at_long_rtt_and_claims_too_low_a_downtime() -> None:
    inputs = replace_example(rtt=1.0, downtime_target=0.010)
    aware, blind = plan(inputs), plan(inputs, "latency-blind")
    assert blind.rounds > aware.rounds  # rounds past the point where they pay off
    assert blind.claimed_downtime_s <= inputs.downtime_target  # what it believes...
    assert blind.downtime_s > 50 * blind.claimed_downtime_s  # ...and what the physics gives
    assert blind.downtime_s == evaluate(inputs, blind.rounds).downtime_s
    assert blind.total_time_s > aware.total_time_s
    # The extra rounds bought almost nothing: both sit on the latency floor.
    assert aware.downtime_s - blind.downtime_s < 0.05 * aware.floor_downtime_s
    assert "as if RTT were 0" in blind.reason


def test_latency_floor_makes_target_unreachable_and_planner_stops_near_the_floor() -> None:
    # lambda = 8 MiB/s / 25 MB/s = 0.3355; V* = 8 MiB/s x 0.5 s / (1 - 0.3355) = 6.312 MB, so
    # no downtime gets under 6.312 MB / 25 MB/s + 0.25 s = 0.5025 s: 0.3 s is out of reach.
    # V_n = V* + 0.3355^n (M - V*): 6 rounds leave 7.070 MB (0.5328 s, 6.0% over the floor),
    # 7 leave 6.566 MB (0.5127 s, 2.0% over): the first within 5%.
    inputs = replace_example(rtt=0.5, downtime_target=0.3)
    p = plan(inputs)
    assert p.verdict == "iterate" and not p.meets_target
    assert "latency floor" in p.reason and "out of reach" in p.reason
    assert p.floor_bytes == pytest.approx(6.312391e6)
    assert p.floor_downtime_s == pytest.approx(0.5024956)
    assert p.rounds == 7
    assert p.final_round.bytes == pytest.approx(6.566478e6)
    assert p.downtime_s == pytest.approx(0.5126591)
    assert evaluate(inputs, 6).downtime_s == pytest.approx(0.5327852)


def test_fixed_costs_over_target_are_named_in_the_reason() -> None:
    p = plan(replace_example(dump_time=0.4, downtime_target=0.3))
    assert "dump, restore and the RTT/2 hand-over alone take" in p.reason


def test_round_cap_limits_rounds_and_zero_cap_means_stop_and_copy() -> None:
    assert plan(replace_example(max_rounds=0)).verdict == "stop-and-copy"
    capped = plan(replace_example(max_rounds=2))
    assert capped.rounds == 2
    assert "cap" in capped.reason


def test_stop_and_copy_target_already_met_still_iterates_when_a_round_beats_it() -> None:
    p = plan(ModelInputs(size=MiB, dirty_rate=MiB, bandwidth=25e6, rtt=0.001))
    assert p.rounds == 1
    assert p.downtime_s < evaluate(p.inputs, 0).downtime_s


def test_every_policy_is_evaluated_with_the_same_latency_aware_physics() -> None:
    plans = compare(EXAMPLE)
    assert tuple(plans) == POLICIES
    for name, p in plans.items():
        same = evaluate(EXAMPLE, p.rounds)
        assert p.policy == name
        assert (p.downtime_s, p.total_time_s, p.bytes_sent) == (
            same.downtime_s,
            same.total_time_s,
            same.bytes_sent,
        )
    assert plans["stop-and-copy"].rounds == 0


def test_phaul_stops_after_a_small_predump() -> None:
    p = plan(ModelInputs(size=100 * 1024, dirty_rate=MiB, bandwidth=25e6, rtt=0.05), "phaul")
    assert p.rounds == 1
    assert "64 pages" in p.reason


def test_phaul_stops_when_a_predump_grows_more_than_ten_percent() -> None:
    p = plan(ModelInputs(size=64 * MiB, dirty_rate=30 * MB, bandwidth=25 * MB, rtt=0.05), "phaul")
    assert p.rounds == 2  # pre-dump 1 wrote 20% more than pre-dump 0
    assert "grew" in p.reason


def test_phaul_does_at_most_nine_predumps() -> None:
    p = plan(EXAMPLE, "phaul")
    assert p.rounds == 9
    assert "9 pre-dumps" in p.reason


def test_phaul_replanned_round_by_round_still_stops_at_nine_predumps() -> None:
    done: list[MeasuredRound] = []
    while (p := replan(EXAMPLE, done, "phaul")).rounds:
        sent = p.per_round[0].bytes
        done.append(MeasuredRound(sent, sent / 25e6 + 0.05, EXAMPLE.dirty_rate, 25e6))
    assert len(done) == 9
    assert "9 pre-dumps" in p.reason


def test_phaul_replan_stops_at_once_when_the_last_predump_grew() -> None:
    done = [MeasuredRound(MB, 0.1, MB, 25e6), MeasuredRound(2 * MB, 0.1, MB, 25e6)]
    p = replan(EXAMPLE, done, "phaul")
    assert p.rounds == 0 and "grew" in p.reason


def test_qemu_stops_when_the_remainder_fits_bandwidth_times_downtime_limit() -> None:
    p = plan(EXAMPLE, "qemu")
    limit = EXAMPLE.bandwidth * EXAMPLE.downtime_target
    assert p.final_round.bytes <= limit < p.per_round[-2].bytes
    tiny = plan(replace_example(size=MiB), "qemu")
    assert tiny.verdict == "stop-and-copy"
    runaway = plan(replace_example(dirty_rate=30e6), "qemu")
    assert runaway.rounds == EXAMPLE.max_rounds and "round cap" in runaway.reason


def test_full_dumps_freeze_every_precopy_round_for_the_whole_state() -> None:
    inputs = replace_example(dump_rate=1024 * MiB, dump_time=0.02)
    p = evaluate(inputs, 3)
    full = 0.02 + 512 * MiB / (1024 * MiB)
    assert p.brownouts_s == pytest.approx((full, full, full))
    assert p.downtime_s == pytest.approx(full + p.final_round.bytes / 25e6 + 0.025)
    plain = evaluate(EXAMPLE, 3)
    # Frozen time does not dirty pages: the volumes are unchanged, only the clock moves.
    assert [r.bytes for r in p.per_round] == pytest.approx([r.bytes for r in plain.per_round])
    # Three pre-copy brownouts and the final dump, all of the whole state.
    assert p.total_time_s == pytest.approx(plain.total_time_s + 4 * full)


def test_incremental_dumps_freeze_in_proportion_to_the_dirty_pages() -> None:
    inputs = replace_example(dump_rate=1024 * MiB, incremental_dumps=True)
    p = evaluate(inputs, 2)
    assert p.brownouts_s == pytest.approx(tuple(r.bytes / (1024 * MiB) for r in p.per_round[:2]))


def test_planner_weighing_brownouts_stops_when_the_next_dump_freezes_longer_than_it_saves() -> None:
    p = plan(
        replace_example(dump_rate=1024 * MiB, dump_time=0.02, restore_time=0.2, brownout_weight=1)
    )
    assert "freeze the container" in p.reason
    nxt = evaluate(p.inputs, p.rounds + 1)
    assert p.downtime_s - nxt.downtime_s <= nxt.brownouts_s[-1]


def test_planner_for_downtime_alone_iterates_past_the_brownout_stop_to_the_floor() -> None:
    weighed = plan(
        replace_example(dump_rate=1024 * MiB, dump_time=0.02, restore_time=0.2, brownout_weight=1)
    )
    p = plan(replace(weighed.inputs, brownout_weight=0.0))
    assert p.rounds > weighed.rounds and p.downtime_s < weighed.downtime_s
    assert "within 5% of the floor" in p.reason


def test_fixed_round_work_dirties_pages_and_raises_the_floor() -> None:
    busy = replace_example(round_overhead=0.5)
    assert floor_bytes(busy) > floor_bytes(EXAMPLE)
    step = volumes(busy, 1)[1]
    assert step == pytest.approx(EXAMPLE.dirty_rate * (EXAMPLE.size / 25e6 + 0.05 + 0.5))


def test_a_longer_round_zero_lengthens_it_and_what_it_leaves_but_not_the_floor() -> None:
    slow_start = replace_example(first_round_extra=1.5)
    base, slow = evaluate(EXAMPLE, 3), evaluate(slow_start, 3)
    assert slow.per_round[0].seconds - base.per_round[0].seconds == pytest.approx(1.5)
    assert slow.per_round[1].bytes - base.per_round[1].bytes == pytest.approx(
        EXAMPLE.dirty_rate * 1.5
    )
    assert floor_bytes(slow_start) == floor_bytes(EXAMPLE)
    # A re-plan comes after round 0: the later rounds are not charged for it.
    done = [MeasuredRound(bytes=512 * MiB, seconds=22.0, dirty_rate=8 * MiB, throughput=25e6)]
    again = replan(slow_start, done, rounds=2)
    assert again.per_round[0].seconds == pytest.approx(
        replan(EXAMPLE, done, rounds=2).per_round[0].seconds
    )
    with pytest.raises(ValueError, match="first_round_extra=0"):
        grid(slow_start, [0.05], [8 * MiB])


def test_final_round_trips_add_to_the_downtime() -> None:
    slow = evaluate(replace_example(final_round_trips=2.5), 2)
    assert slow.downtime_s - evaluate(EXAMPLE, 2).downtime_s == pytest.approx(2 * EXAMPLE.rtt)


def test_working_set_saturates_the_dirty_set() -> None:
    inputs = replace_example(dirty_rate=32 * MiB, working_set=64 * MiB)
    v = volumes(inputs, 400)
    assert v[1:].max() < 64 * MiB
    floor = floor_bytes(inputs)
    assert volumes(inputs, 1, start=floor)[1] == pytest.approx(floor, rel=1e-9)  # a fixed point
    assert v[-1] == pytest.approx(floor, rel=1e-6)  # and the one the rounds approach
    # Dirtying faster than the link is no bar when the hot set is small.
    assert plan(inputs).verdict == "iterate"


def test_working_set_worked_example() -> None:
    # 100 MB over 100 MB/s at no RTT, dirtying 50 MB/s over a 50 MB working set: round 0 runs
    # 1 s and dirties 50 MB x (1 - e^-1) = 31.606 MB; round 1 runs 0.31606 s and dirties
    # 50 MB x (1 - e^-0.31606) = 13.549 MB (the linear model: 50 MB, then 25 MB).
    inputs = ModelInputs(
        size=100 * MB, dirty_rate=50 * MB, bandwidth=100 * MB, rtt=0.0, working_set=50 * MB
    )
    assert volumes(inputs, 2) == pytest.approx([100 * MB, 31.606028 * MB, 13.549225 * MB])
    assert [r.seconds for r in evaluate(inputs, 2).per_round] == pytest.approx(
        [1.0, 0.31606028, 0.13549225]
    )


def test_the_readme_example_worked_by_hand() -> None:
    # lambda = 0.3355, each round 50 ms of round trips: V = 512, 172.2, 58.18, 19.92, 7.085,
    # 2.777 MiB. Four rounds leave 0.322 s of downtime, five 2.777 MiB / 25 MB/s + 25 ms.
    p = plan(EXAMPLE)
    assert p.verdict == "iterate" and p.rounds == 5
    assert [r.bytes / MiB for r in p.per_round] == pytest.approx(
        [512, 172.198692, 58.180293, 19.922067, 7.084736, 2.777243]
    )
    assert [r.seconds for r in p.per_round[:2]] == pytest.approx([21.52483648, 7.27253662])
    assert evaluate(EXAMPLE, 4).downtime_s == pytest.approx(0.3221554)
    assert p.downtime_s == pytest.approx(0.1414860)
    assert p.total_time_s == pytest.approx(32.6618649)
    assert p.bytes_sent / MiB == pytest.approx(772.163031)


def test_a_huge_working_set_reduces_to_the_linear_dirty_model() -> None:
    saturating = volumes(replace_example(working_set=1e18), 6)
    assert saturating == pytest.approx(volumes(EXAMPLE, 6), rel=1e-6)


def test_replan_with_predicted_measurements_continues_the_same_plan() -> None:
    first = plan(EXAMPLE)
    done = [
        MeasuredRound(
            bytes=r.bytes,
            seconds=r.bytes / EXAMPLE.bandwidth + EXAMPLE.rtt,
            dirty_rate=EXAMPLE.dirty_rate,
            throughput=EXAMPLE.bandwidth,
        )
        for r in first.per_round[:2]
    ]
    rest = replan(EXAMPLE, done)
    assert rest.first_round == 2
    assert rest.rounds == first.rounds - 2
    assert [r.index for r in rest.per_round] == [r.index for r in first.per_round[2:]]
    assert rest.next_round.bytes == pytest.approx(first.per_round[2].bytes)
    assert rest.downtime_s == pytest.approx(first.downtime_s)
    assert rest.inputs.max_rounds == EXAMPLE.max_rounds - 2


def test_replan_follows_a_measured_dirty_rate_and_known_dirty_bytes() -> None:
    hot = MeasuredRound(bytes=512 * MiB, seconds=21.5, dirty_rate=30e6, throughput=25e6)
    assert replan(EXAMPLE, [hot]).verdict == "stop-and-copy"  # finish now: rounds would grow
    known = MeasuredRound(512 * MiB, 21.5, 8 * MiB, 25e6, dirtied_bytes=3 * MiB)
    rest = replan(EXAMPLE, [known])
    assert rest.next_round.bytes == 3 * MiB


def test_replan_with_nothing_done_is_plan() -> None:
    assert replan(EXAMPLE, []).to_json() == plan(EXAMPLE).to_json()


def test_plan_to_json_is_strict_json_with_the_documented_keys() -> None:
    data = plan(EXAMPLE).to_json()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    for key in ("verdict", "reason", "rounds", "downtime_s", "total_time_s", "bytes_sent"):
        assert key in data
    assert "floor_bytes" in data
    assert data["per_round"][-1]["final"] is True
    assert set(data["per_round"][0]) >= {"round", "bytes", "seconds"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": -1.0}, "size must be at least zero"),
        ({"bandwidth": 0.0}, "bandwidth must be more than zero"),
        ({"rtt": math.nan}, "rtt must be a finite number"),
        ({"dirty_rate": math.inf}, "dirty rate must be a finite number"),
        ({"max_rounds": 2.5}, "max rounds must be a whole number"),
        ({"max_rounds": -1}, "max rounds must be between"),
        ({"working_set": 0.0}, "working set must be more than zero"),
        ({"distinct_share": 0.0}, "distinct share must be more than zero"),
        ({"distinct_share": 1.5}, "distinct share must be at most 1"),
    ],
)
def test_impossible_inputs_are_usage_errors(change: dict[str, float], message: str) -> None:
    with pytest.raises(ModelInputError, match=message) as caught:
        replace_example(**change)
    assert isinstance(caught.value, UsageError)


def test_unknown_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown policy 'greedy'"):
        plan(EXAMPLE, "greedy")  # type: ignore[arg-type]


def test_grid_matches_the_step_by_step_plan_pointwise() -> None:
    rtts = np.linspace(0, 0.8, 9)
    rates = np.linspace(0, 30e6, 7)
    g = grid(EXAMPLE, rtts, rates)
    assert g.rounds.shape == (9, 7)
    for a, rtt in enumerate(rtts):
        for b, rate in enumerate(rates):
            p = plan(replace_example(rtt=float(rtt), dirty_rate=float(rate)))
            assert g.rounds[a, b] == p.rounds
            assert g.downtime_s[a, b] == pytest.approx(p.downtime_s, rel=1e-9)
            assert g.total_time_s[a, b] == pytest.approx(p.total_time_s, rel=1e-9)
            assert g.bytes_sent[a, b] == pytest.approx(p.bytes_sent, rel=1e-9)
            assert g.iterate[a, b] == (p.verdict == "iterate")


def test_grid_refuses_the_working_set_model_it_has_no_closed_form_for() -> None:
    with pytest.raises(ValueError, match="closed form"):
        grid(replace_example(working_set=MiB), [0.1], [MiB])


def test_a_replan_after_a_round_may_stop_at_once_when_another_round_costs_more_than_it_saves():
    inputs = ModelInputs(
        size=21e6,
        dirty_rate=115e3,
        bandwidth=25e6,
        rtt=0.04,
        round_trips=3,
        dump_time=0.15,
        dump_rate=500e6,
        restore_time=0.9,
        max_rounds=8,
    )
    assert plan(inputs).rounds >= 1  # a first plan iterates at least once
    done = [MeasuredRound(bytes=20.8e6, seconds=1.5, dirty_rate=115e3, throughput=25e6)]
    after = replan(inputs, done)
    assert after.rounds == 0 and after.first_round == 1
    assert after.per_round[-1].final and "0 more rounds" in after.reason


def test_the_worked_examples_downtime_splits_into_dump_send_and_restore() -> None:
    # The worked example's final round: 0.5 dump + 2.1 MB / 100 MB/s + RTT/2 + 0.25 restore
    # (the hand-over's round trips go with the send: the commit follows the stream).
    inputs = ModelInputs(
        size=100 * MB, dirty_rate=10 * MB, bandwidth=100 * MB, rtt=0.1,
        dump_time=0.5, restore_time=0.25, downtime_target=0.83,
    )  # fmt: skip
    parts = plan(inputs).downtime_parts
    assert (parts.dump_s, parts.send_s, parts.restore_s) == pytest.approx((0.5, 0.071, 0.25))
    assert (parts.freeze_s, parts.diff_s, parts.commit_s, parts.resume_s) == (0.0,) * 4


def test_the_hand_overs_round_trips_beyond_the_streams_way_there_are_the_answers_way_back() -> None:
    inputs = ModelInputs(
        size=100 * MB, dirty_rate=10 * MB, bandwidth=100 * MB, rtt=0.1,
        dump_time=0.5, restore_time=0.25, final_round_trips=1.14,
    )  # fmt: skip
    parts = plan(inputs, "stop-and-copy").downtime_parts
    assert (parts.send_s, parts.answer_s) == pytest.approx((1.0 + 0.064, 0.05))
    assert parts.served_s == pytest.approx(plan(inputs, "stop-and-copy").downtime_s - 0.05)


def test_a_dump_that_writes_the_whole_state_is_the_dump_part_not_the_send() -> None:
    # Full dumps at 1 GB/s: the final dump writes all 100 MB (0.1 s) whatever the residual.
    inputs = ModelInputs(
        size=100 * MB, dirty_rate=10 * MB, bandwidth=100 * MB, rtt=0.1,
        dump_time=0.5, dump_rate=1e9, restore_time=0.25,
    )  # fmt: skip
    p = plan(inputs, "stop-and-copy")
    assert p.downtime_parts.dump_s == pytest.approx(0.6)
    assert p.downtime_parts.send_s == pytest.approx(1.0 + 0.05)  # 100 MB over the link, RTT/2
    assert p.downtime_parts.total_s == pytest.approx(p.downtime_s)
