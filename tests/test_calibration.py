"""Calibration: least-squares fits of k, dump, restore and the dirty set to measured rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from whimbrel.backends.calibration import (
    Calibration,
    DirtySample,
    Estimate,
    RoundRecord,
    calibrate,
    fit_dirty_set,
    fit_dump,
    fit_restore,
    fit_round_trips,
)
from whimbrel.backends.model import ModelInputs, plan

MiB = 2**20


def synthetic_rounds(
    rng: np.random.Generator, count: int, noise: float, *, k: float = 2.0
) -> list[RoundRecord]:
    """Rounds from the model's own equations: transfer = V/B + k*RTT, dump = 50 ms + V/400 MB/s."""
    records = []
    for _ in range(count):
        rtt, throughput, sent = rng.uniform(0.01, 0.3), rng.uniform(5e6, 5e7), rng.uniform(1e6, 1e8)
        records.append(
            RoundRecord(
                bytes=sent,
                transfer_s=sent / throughput + k * rtt + rng.normal(0, noise),
                throughput=throughput,
                rtt=rtt,
                dump_s=0.05 + sent / 4e8 + rng.normal(0, noise),
                dumped_bytes=sent,
            )
        )
    return records


def test_exact_records_give_back_the_true_terms_with_no_spread() -> None:
    records = synthetic_rounds(np.random.default_rng(0), 8, 0.0)
    k = fit_round_trips(records)
    assert k is not None
    assert k.value == pytest.approx(2.0, rel=1e-9)
    assert k.residual_std == pytest.approx(0.0, abs=1e-9)
    fitted = fit_dump(records)
    assert fitted is not None
    dump_time, dump_rate = fitted
    assert dump_time.value == pytest.approx(0.05, rel=1e-6)
    assert dump_rate is not None and dump_rate.value == pytest.approx(4e8, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_records_recover_the_terms_within_their_standard_errors(seed: int) -> None:
    records = synthetic_rounds(np.random.default_rng(seed), 40, 0.003)
    k = fit_round_trips(records)
    assert k is not None and 0 < k.stderr < 0.05
    assert abs(k.value - 2.0) < 4 * k.stderr
    assert k.residual_std == pytest.approx(0.003, rel=0.4)
    fitted = fit_dump(records)
    assert fitted is not None and fitted[1] is not None
    dump_time, dump_rate = fitted
    assert abs(dump_time.value - 0.05) < 4 * dump_time.stderr
    assert abs(dump_rate.value - 4e8) < 4 * dump_rate.stderr


def test_dumps_of_one_size_fit_a_dump_time_but_no_rate() -> None:
    records = [
        RoundRecord(1e6, 0.1, 1e7, 0.05, dump_s=s, dumped_bytes=512 * MiB) for s in (0.5, 0.6, 0.7)
    ]
    fitted = fit_dump(records)
    assert fitted is not None
    dump_time, rate = fitted
    assert rate is None
    assert dump_time.value == pytest.approx(0.6)
    assert dump_time.stderr == pytest.approx(0.1 / math.sqrt(3))


def test_restore_time_is_fitted_from_final_rounds_only() -> None:
    records = [
        RoundRecord(1e6, 0.1, 1e7, 0.05, restore_s=9.0),  # a pre-copy round has no restore
        RoundRecord(1e6, 0.1, 1e7, 0.05, final=True, restore_s=0.4),
        RoundRecord(1e6, 0.1, 1e7, 0.05, final=True, restore_s=0.5),
    ]
    restore = fit_restore(records)
    assert restore is not None
    assert restore.value == pytest.approx(0.45)
    assert restore.samples == 2


def test_one_record_gives_a_value_with_unknown_spread() -> None:
    k = fit_round_trips([RoundRecord(1e6, 0.2, 1e7, 0.05)])
    assert k is not None
    assert k.value == pytest.approx(2.0)
    assert math.isinf(k.stderr) and math.isinf(k.residual_std)


def test_records_that_cannot_determine_a_term_leave_it_none() -> None:
    assert fit_round_trips([RoundRecord(1e6, 0.1, 1e7, 0.0)]) is None  # no RTT to scale k by
    assert fit_dump([]) is None
    assert fit_restore([]) is None
    assert fit_dirty_set([]) is None
    assert calibrate([]) == Calibration()


def test_dirty_samples_that_bend_fit_the_working_set() -> None:
    rng = np.random.default_rng(3)
    rate, working_set = 10 * MiB, 64 * MiB
    intervals = np.array([0.25, 0.5, 1, 2, 4, 8, 16, 32])
    dirtied = working_set * -np.expm1(-rate * intervals / working_set)
    samples = [
        DirtySample(t, y * (1 + 0.01 * rng.standard_normal()))
        for t, y in zip(intervals, dirtied, strict=True)
    ]
    fitted = fit_dirty_set(samples)
    assert fitted is not None
    d, w = fitted
    assert w is not None
    assert abs(d.value - rate) < 4 * d.stderr
    assert abs(w.value - working_set) < 4 * w.stderr
    assert w.stderr < 0.05 * working_set


def test_dirty_samples_on_a_straight_line_fit_a_rate_and_no_working_set() -> None:
    samples = [DirtySample(t, 3 * MiB * t) for t in (0.5, 1, 2, 4, 8)]
    fitted = fit_dirty_set(samples)
    assert fitted is not None
    d, w = fitted
    assert w is None
    assert d.value == pytest.approx(3 * MiB)


def test_calibration_applies_to_model_inputs_for_the_next_plan() -> None:
    records = synthetic_rounds(np.random.default_rng(1), 12, 0.001)
    records.append(RoundRecord(1e6, 0.2, 1e7, 0.05, final=True, restore_s=0.3))
    samples = [
        DirtySample(t, 64 * MiB * -math.expm1(-8 * MiB * t / (64 * MiB))) for t in range(1, 9)
    ]
    calibration = calibrate(records, samples)
    inputs = calibration.apply(
        ModelInputs(size=512 * MiB, dirty_rate=MiB, bandwidth=25e6, rtt=0.05)
    )
    assert inputs.round_trips == pytest.approx(2.0, rel=0.01)
    assert inputs.dump_time == pytest.approx(0.05, rel=0.1)
    assert inputs.dump_rate == pytest.approx(4e8, rel=0.01)
    assert inputs.restore_time == pytest.approx(0.3)
    assert inputs.dirty_rate == pytest.approx(8 * MiB, rel=1e-6)
    assert inputs.working_set == pytest.approx(64 * MiB, rel=1e-6)
    assert plan(inputs).per_round  # the fitted inputs plan


def test_negative_fitted_times_are_clipped_before_they_reach_the_model() -> None:
    calibration = Calibration(dump_time=Estimate(-0.001, 0.002, 0.002, 5))
    inputs = calibration.apply(ModelInputs(size=MiB, dirty_rate=MiB, bandwidth=1e7, rtt=0.01))
    assert inputs.dump_time == 0.0
