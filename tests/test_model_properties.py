"""Properties of the model that hold for all inputs (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whimbrel.backends.model import (
    PAGE_SIZE,
    ModelInputs,
    evaluate,
    floor_bytes,
    grid,
    plan,
    rounds_closed_form,
    volumes,
)

sizes = st.floats(1e3, 1e11)
bandwidths = st.floats(1e4, 1e10)
# lambda = D/B: zero, or not so small that lambda^n underflows within a few rounds
ratios = st.just(0.0) | st.floats(1e-6, 0.999)
rtts = st.floats(0.0, 2.0)
trips = st.floats(0.0, 4.0)
seconds = st.floats(0.0, 2.0)


@st.composite
def model_inputs(
    draw: st.DrawFn, *, converging: bool = False, saturating: bool = False
) -> ModelInputs:
    bandwidth = draw(bandwidths)
    ratio = draw(ratios if converging else ratios | st.floats(0.999, 3.0))
    dump_rate = draw(st.none() | st.floats(1e5, 1e11))
    return ModelInputs(
        size=draw(sizes),
        dirty_rate=ratio * bandwidth,
        bandwidth=bandwidth,
        rtt=draw(rtts),
        round_trips=draw(trips),
        dump_time=draw(seconds),
        restore_time=draw(seconds),
        downtime_target=draw(st.floats(0.0, 5.0)),
        max_rounds=draw(st.integers(0, 60)),
        working_set=draw(st.floats(1e3, 1e11)) if saturating else None,
        dump_rate=dump_rate,
        incremental_dumps=draw(st.booleans()),
        floor_tolerance=draw(st.sampled_from([0.0, 0.01, 0.05, 0.2])),
        round_overhead=draw(st.sampled_from([0.0, 0.3])),
        final_round_trips=draw(st.sampled_from([0.5, 2.0])),
        brownout_weight=draw(st.sampled_from([0.0, 1.0])),
    )


@given(size=sizes, bandwidth=bandwidths, ratio=ratios, n=st.integers(0, 40))
def test_without_latency_or_fixed_costs_volumes_are_a_geometric_series(
    size: float, bandwidth: float, ratio: float, n: int
) -> None:
    inputs = ModelInputs(size=size, dirty_rate=ratio * bandwidth, bandwidth=bandwidth, rtt=0.0)
    expected = size * (inputs.dirty_rate / bandwidth) ** np.arange(n + 1)
    np.testing.assert_allclose(volumes(inputs, n), expected, rtol=1e-9, atol=1e-300)
    p = evaluate(inputs, n)
    np.testing.assert_allclose([r.bytes for r in p.per_round], expected, rtol=1e-9, atol=1e-300)


@given(inputs=model_inputs(converging=True), n=st.integers(1, 60))
def test_when_dirty_rate_is_below_throughput_volumes_fall_monotonically_to_the_floor(
    inputs: ModelInputs, n: int
) -> None:
    v = volumes(inputs, n)
    floor = floor_bytes(inputs)
    gap = np.abs(v - floor)
    assert np.all(np.diff(gap) <= 1e-9 * (floor + inputs.size))  # always closer to V*
    if inputs.size >= floor:  # from above: falling, never below the floor
        assert np.all(np.diff(v) <= 1e-9 * inputs.size)
        assert np.all(v >= floor * (1 - 1e-9))


@given(inputs=model_inputs(converging=True, saturating=True), n=st.integers(1, 60))
def test_with_a_working_set_volumes_move_monotonically_towards_the_floor(
    inputs: ModelInputs, n: int
) -> None:
    v = volumes(inputs, n)
    steps = np.diff(v)
    scale = 1e-9 * max(inputs.size, inputs.working_set or 0.0)
    assert np.all(steps[1:] * steps[0] >= -(scale**2))  # one direction only
    assert np.all(v[1:] <= inputs.working_set * (1 + 1e-12))  # never more than W dirty


def _ties(inputs: ModelInputs, n: int) -> list[float]:
    """How far each rule deciding n is from its threshold, relative; 0 is an exact tie."""
    here, there = evaluate(inputs, n), evaluate(inputs, n + 1)
    per_byte = 1 / inputs.bandwidth
    if inputs.dump_rate is not None and inputs.incremental_dumps:
        per_byte += 1 / inputs.dump_rate
    floor_dt = here.floor_downtime_s
    slack = inputs.floor_tolerance * floor_dt + PAGE_SIZE * per_byte
    scale = max(here.downtime_s, 1e-300)
    return [
        abs(here.downtime_s - inputs.downtime_target) / scale,  # target met
        abs(inputs.downtime_target - floor_dt) / scale,  # target reachable at all
        abs(here.downtime_s - floor_dt - slack) / scale,  # near the floor
        abs(here.downtime_s - there.downtime_s - inputs.brownout_weight * there.brownouts_s[-1])
        / scale,  # freeze
        abs(volumes(inputs, 1)[1] - inputs.size) / inputs.size,  # the start condition
    ]


@settings(max_examples=500)
@given(inputs=model_inputs())
def test_closed_form_rounds_equal_the_first_round_meeting_the_stop_rule_step_by_step(
    inputs: ModelInputs,
) -> None:
    step_by_step = plan(inputs).rounds
    closed = rounds_closed_form(inputs)
    if closed != step_by_step:
        # Only a tie can split them: a ceil() of a logarithm against a comparison of products.
        assert min(_ties(inputs, min(closed, step_by_step))) < 1e-6


@settings(max_examples=300)
@given(inputs=model_inputs())
def test_closed_form_grid_predicts_what_the_recurrence_predicts(inputs: ModelInputs) -> None:
    g = grid(inputs, [inputs.rtt], [inputs.dirty_rate])
    n = int(g.rounds[0, 0])
    p = evaluate(inputs, n)
    assert g.downtime_s[0, 0] == pytest.approx(p.downtime_s, rel=1e-6)
    assert g.total_time_s[0, 0] == pytest.approx(p.total_time_s, rel=1e-6)
    assert g.bytes_sent[0, 0] == pytest.approx(p.bytes_sent, rel=1e-6)


@given(
    inputs=model_inputs(saturating=False) | model_inputs(saturating=True),
    rtt_b=rtts,
    n=st.integers(0, 40),
)
def test_for_a_fixed_number_of_rounds_downtime_never_falls_as_rtt_grows(
    inputs: ModelInputs, rtt_b: float, n: int
) -> None:
    low, high = sorted((inputs.rtt, rtt_b))
    near = evaluate(replace(inputs, rtt=low), n)
    far = evaluate(replace(inputs, rtt=high), n)
    assert far.downtime_s >= near.downtime_s * (1 - 1e-12)
    assert far.total_time_s >= near.total_time_s * (1 - 1e-12)


@given(inputs=model_inputs(), excess=st.floats(1.0, 10.0))
def test_when_dirty_rate_reaches_throughput_the_verdict_is_stop_and_copy(
    inputs: ModelInputs, excess: float
) -> None:
    inputs = replace(inputs, dirty_rate=inputs.bandwidth * excess)
    p = plan(inputs)
    assert p.verdict == "stop-and-copy"
    assert p.rounds == 0
    assert plan(inputs, "latency-blind").verdict == "stop-and-copy"


@given(inputs=model_inputs() | model_inputs(saturating=True))
def test_latency_aware_never_predicts_more_downtime_than_stop_and_copy(
    inputs: ModelInputs,
) -> None:
    assert plan(inputs).downtime_s <= plan(inputs, "stop-and-copy").downtime_s


def _by_hand(i: ModelInputs, n: int) -> tuple[list[float], list[float], float]:
    """What n pre-copy rounds send, how long each takes and the downtime, from the model's
    stated semantics alone (linear dirtying): round r runs V_r/B + k*RTT + c (round 0 e more)
    and round r+1 sends what was dirtied meanwhile; with a dump rate, each round first freezes
    for a dump of all of M (or of V_r, incremental), and frozen time dirties nothing; the final
    round dumps, sends V_n, makes its j round trips and restores."""
    sent: list[float] = [i.size]
    seconds: list[float] = []

    def dump(v: float) -> float:
        return i.dump_time + (v if i.incremental_dumps else i.size) / i.dump_rate

    for r in range(n):
        running = sent[r] / i.bandwidth + i.round_trips * i.rtt + i.round_overhead
        running += i.first_round_extra if r == 0 else 0.0
        seconds.append((dump(sent[r]) if i.dump_rate else 0.0) + running)
        sent.append(i.dirty_rate * running)
    frozen = dump(sent[n]) if i.dump_rate else i.dump_time
    downtime = frozen + sent[n] / i.bandwidth + i.final_round_trips * i.rtt + i.restore_time
    return sent, [*seconds, downtime], downtime


@given(
    inputs=model_inputs(),
    first_round_extra=st.sampled_from([0.0, 1.5]),
    policy=st.sampled_from(["latency-aware", "stop-and-copy", "latency-blind", "phaul", "qemu"]),
)
def test_every_policys_rounds_follow_the_pre_copy_recurrence_worked_by_hand(
    inputs: ModelInputs, first_round_extra: float, policy: str
) -> None:
    inputs = replace(inputs, first_round_extra=first_round_extra)
    p = plan(inputs, policy)  # type: ignore[arg-type]
    sent, seconds, downtime = _by_hand(inputs, p.rounds)
    assert [r.bytes for r in p.per_round] == pytest.approx(sent, rel=1e-9)
    assert [r.seconds for r in p.per_round] == pytest.approx(seconds, rel=1e-9)
    assert p.downtime_s == pytest.approx(downtime, rel=1e-9)
    assert p.total_time_s == pytest.approx(math.fsum(seconds), rel=1e-9)
    assert p.bytes_sent == pytest.approx(math.fsum(sent), rel=1e-9)


@settings(max_examples=300)
@given(inputs=model_inputs() | model_inputs(saturating=True))
def test_latency_aware_iterates_exactly_when_a_round_beats_stop_and_copy_and_stops_soonest(
    inputs: ModelInputs,
) -> None:
    """For every verdict: it iterates exactly when some number of rounds within the cap beats
    stop-and-copy's downtime; then it takes the fewest rounds that meet the target, or, with
    the target out of reach (and freezes not weighed), comes within its floor tolerance and a
    page of the least downtime any number of rounds gives."""
    p = plan(inputs)
    down = [evaluate(inputs, n).downtime_s for n in range(inputs.max_rounds + 1)]
    best = min(down)
    if p.verdict == "stop-and-copy":
        assert p.rounds == 0 and best >= down[0] * (1 - 1e-12)
        return
    assert 1 <= p.rounds <= inputs.max_rounds and best < down[0]
    assert p.downtime_s < down[0]
    meeting = [n for n in range(1, len(down)) if down[n] <= inputs.downtime_target]
    if meeting:
        assert p.rounds == meeting[0] and p.meets_target
    elif inputs.brownout_weight == 0:
        per_byte = 1 / inputs.bandwidth
        if inputs.dump_rate is not None and inputs.incremental_dumps:
            per_byte += 1 / inputs.dump_rate
        page = PAGE_SIZE * per_byte
        assert p.downtime_s <= best * (1 + inputs.floor_tolerance) + page + 1e-12 * best


@given(
    inputs=model_inputs() | model_inputs(saturating=True),
    policy=st.sampled_from(["latency-aware", "stop-and-copy", "latency-blind", "phaul", "qemu"]),
)
def test_plan_totals_are_the_sums_of_its_rounds(inputs: ModelInputs, policy: str) -> None:
    p = plan(inputs, policy)  # type: ignore[arg-type]
    assert len(p.per_round) == p.rounds + 1
    assert p.total_time_s == pytest.approx(math.fsum(r.seconds for r in p.per_round))
    assert p.bytes_sent == pytest.approx(math.fsum(r.bytes for r in p.per_round))
    assert p.downtime_s == p.final_round.seconds
    assert p.rounds <= inputs.max_rounds
    assert (p.verdict == "iterate") == (p.rounds > 0)
