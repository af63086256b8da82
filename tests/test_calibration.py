"""Calibration: least-squares fits of k, dump, restore and the dirty set to measured rounds."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from whimbrel.backends.costs import Costs, load_costs, save_costs
from whimbrel.backends.dirty import DirtySample
from whimbrel.backends.model import plan
from whimbrel.backends.research.calibration import (
    Calibration,
    Estimate,
    RoundRecord,
    calibrate,
    fit_dirty_set,
    fit_dump,
    fit_final_dump,
    fit_handover,
    fit_round_work,
)
from whimbrel.backends.research.constants import write_costs
from whimbrel.backends.research.runs import records

MiB = 2**20


def sample_over(interval_s: float, dirty_bytes: float) -> DirtySample:
    """A dirty-rate sample over `interval_s` with only what the dirty-set fit reads filled in."""
    return DirtySample(
        t=interval_s,
        interval_s=interval_s,
        dirty_pages=round(dirty_bytes) // 4096,
        dirty_bytes=round(dirty_bytes),
        pages=0,
        cpu_s=0.0,
    )


def synthetic_rounds(
    rng: np.random.Generator,
    count: int,
    noise: float,
    *,
    final: bool = False,
    stream: float | None = None,
) -> list[RoundRecord]:
    """Rounds from the model's own equations: dump = 50 ms + M/400 MB/s; a pre-copy round
    takes dump + V/B + 0.2 s + 2*RTT + M/1 GB/s; a final round dump + V/B + 0.4 s + 1.5*RTT
    + M/800 MB/s. With `stream`, sending also costs V/stream beyond V/B."""
    records = []
    for _ in range(count):
        rtt, throughput = rng.uniform(0.005, 0.3), rng.uniform(5e6, 5e7)
        sent, state = rng.uniform(1e6, 1e8), rng.uniform(6e7, 1.1e9)
        dump = 0.05 + state / 4e8 + rng.normal(0, noise)
        work = 0.4 + 1.5 * rtt + state / 8e8 if final else 0.2 + 2 * rtt + state / 1e9
        send = sent / throughput + (sent / stream if stream else 0.0)
        records.append(
            RoundRecord(
                bytes=sent,
                transfer_s=send,
                throughput=throughput,
                rtt=rtt,
                final=final,
                dump_s=dump,
                dumped_bytes=state,
                seconds=dump + send + work + rng.normal(0, noise),
            )
        )
    return records


def test_exact_records_give_back_the_true_terms_with_no_spread() -> None:
    rng = np.random.default_rng(0)
    records = synthetic_rounds(rng, 8, 0.0) + synthetic_rounds(rng, 8, 0.0, final=True)
    work = fit_round_work(records)
    assert work is not None
    assert work["rtt"].value == pytest.approx(2.0, rel=1e-9)
    assert work["fixed"].value == pytest.approx(0.2, rel=1e-9)
    assert 1 / work["state"].value == pytest.approx(1e9, rel=1e-9)
    assert work["fixed"].residual_std == pytest.approx(0.0, abs=1e-9)
    handover = fit_handover(records)
    assert handover is not None
    assert handover["rtt"].value == pytest.approx(1.5, rel=1e-9)
    assert handover["fixed"].value == pytest.approx(0.4, rel=1e-9)
    fitted = fit_dump(records)
    assert fitted is not None
    dump_time, dump_rate = fitted
    assert dump_time.value == pytest.approx(0.05, rel=1e-6)
    assert dump_rate is not None and dump_rate.value == pytest.approx(4e8, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_records_recover_the_terms_within_their_standard_errors(seed: int) -> None:
    records = synthetic_rounds(np.random.default_rng(seed), 60, 0.003)
    work = fit_round_work(records)
    assert work is not None
    k = work["rtt"]
    assert 0 < k.stderr < 0.1
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


def test_a_term_the_records_do_not_vary_is_left_out_of_the_fit() -> None:
    # One RTT only: k cannot be told from the fixed work, so it is not fitted.
    records = [replace(r, rtt=0.05) for r in synthetic_rounds(np.random.default_rng(2), 10, 0.0)]
    work = fit_round_work(records)
    assert work is not None and "rtt" not in work and "state" in work


def _at_one_size(r: RoundRecord, state: float) -> RoundRecord:
    """synthetic_rounds' record, its state (and so its dump and work) made `state`."""
    work = 0.4 + 1.5 * r.rtt + state / 8e8 if r.final else 0.2 + 2 * r.rtt + state / 1e9
    dump = 0.05 + state / 4e8
    return replace(r, dumped_bytes=state, dump_s=dump, seconds=dump + r.transfer_s + work)


def test_one_state_size_holds_the_rates_in_use_and_fits_the_rest_around_them() -> None:
    # A partial grid (one state size) says nothing of the per-byte terms: they stay at the
    # costs in use, and the fixed terms are fitted net of them, not swollen by them.
    rng = np.random.default_rng(3)
    rounds = synthetic_rounds(rng, 30, 0.0) + synthetic_rounds(rng, 30, 0.0, final=True)
    one_size = [_at_one_size(r, 256 * MiB) for r in rounds]
    in_use = Costs(scan_rate=1e9, dump_rate=4e8, restore_rate=8e8)
    fitted = calibrate(one_size, in_use=in_use)
    assert fitted.scan_rate is None and fitted.restore_rate is None and fitted.dump_rate is None
    assert fitted.round_fixed is not None and fitted.round_fixed.value == pytest.approx(0.2)
    assert fitted.restore_time is not None and fitted.restore_time.value == pytest.approx(0.4)
    assert fitted.dump_time is not None and fitted.dump_time.value == pytest.approx(0.05)
    costs = fitted.costs(in_use)
    assert (costs.scan_rate, costs.dump_rate, costs.restore_rate) == (1e9, 4e8, 8e8)
    unheld = calibrate(one_size).round_fixed  # without them, the constant takes their part
    assert unheld is not None and unheld.value == pytest.approx(0.2 + 256 * MiB / 1e9)
    # Round 0's excess is fitted net of the held scan too (the plan adds it to c0 + M/scan).
    first = [replace(_at_one_size(r, 256 * MiB), index=0) for r in synthetic_rounds(rng, 12, 0.0)]
    slow_start = [replace(r, seconds=(r.seconds or 0.0) + 0.5 + 9 * r.rtt) for r in first]
    extra = calibrate(one_size + slow_start, in_use=in_use)
    assert extra.first_round_fixed is not None
    assert extra.first_round_fixed.value == pytest.approx(0.5)


def test_a_slope_fitted_negative_is_dropped_and_the_rest_refitted() -> None:
    # The work does not grow with RTT at all here; noise must not make k negative.
    rng = np.random.default_rng(4)
    records = [
        RoundRecord(1e6, 0.1, 1e7, rtt, dump_s=0.1, dumped_bytes=1e8, seconds=0.1 + 0.1 + 0.3 + e)
        for rtt, e in zip(rng.uniform(0.01, 0.2, 12), rng.normal(0, 0.01, 12), strict=True)
    ]
    work = fit_round_work(records)
    assert work is not None
    assert "rtt" not in work or work["rtt"].value > 0
    assert work["fixed"].value == pytest.approx(0.3, abs=0.02)


def test_the_handover_is_fitted_from_final_rounds_only() -> None:
    rng = np.random.default_rng(5)
    records = synthetic_rounds(rng, 5, 0.0) + synthetic_rounds(rng, 6, 0.0, final=True)
    handover = fit_handover(records)
    assert handover is not None and handover["fixed"].samples == 6


def test_lazily_restored_final_rounds_stay_out_of_the_eager_restores_fit() -> None:
    # A lazy restore does not grow with the state: fitted with the eager ones it would flatten
    # their slope (M/restore_rate) for every eager plan after.
    rng = np.random.default_rng(6)
    eager = synthetic_rounds(rng, 8, 0.0, final=True)
    lazy = [replace(r, lazy=True, seconds=r.dump_s + r.transfer_s + 0.4) for r in eager]
    handover = fit_handover(eager + lazy)
    assert handover is not None and handover["fixed"].samples == 8
    assert 1 / handover["state"].value == pytest.approx(8e8)


def test_a_lazy_restore_plans_no_restore_that_grows_with_the_state() -> None:
    def restore_time(size: float, lazy: bool) -> float:
        return Costs(restore_time_s=0.2, restore_rate=1e9).model_inputs(
            size=size, dirty_rate=MiB, bandwidth=1e8, rtt=0.05, downtime_target=0.3,
            max_rounds=8, lazy_restore=lazy,
        ).restore_time  # fmt: skip

    assert restore_time(1e9, lazy=False) == pytest.approx(1.2)
    assert restore_time(64 * MiB, lazy=True) == restore_time(1e9, lazy=True) == 0.2


def test_lazy_final_rounds_fit_a_fixed_hand_over_of_their_own_round_trips_held() -> None:
    # A lazy restore's hand-over (0.12 s here against the eager one's 0.4 s + M/800 MB/s) is
    # its own term: planned with the eager fixed part it would be over-predicted at every size.
    rng = np.random.default_rng(7)
    eager = synthetic_rounds(rng, 8, 0.0, final=True)
    lazy = [
        replace(r, lazy=True, seconds=r.dump_s + r.transfer_s + 0.12 + 1.5 * r.rtt)
        for r in synthetic_rounds(rng, 6, 0.0, final=True)
    ]
    fitted = calibrate(eager + lazy)
    assert fitted.lazy_restore_time is not None
    assert fitted.lazy_restore_time.value == pytest.approx(0.12, rel=1e-6)
    assert fitted.lazy_restore_time.samples == 6
    assert fitted.costs().lazy_restore_time_s == pytest.approx(0.12, rel=1e-6)
    assert calibrate(eager).lazy_restore_time is None


def test_a_lazy_restore_plans_with_its_own_fixed_hand_over_where_one_was_fitted() -> None:
    def restore_time(size: float, lazy: bool) -> float:
        return Costs(restore_time_s=0.2, restore_rate=1e9, lazy_restore_time_s=0.1).model_inputs(
            size=size, dirty_rate=MiB, bandwidth=1e8, rtt=0.05, downtime_target=0.3,
            max_rounds=8, lazy_restore=lazy,
        ).restore_time  # fmt: skip

    assert restore_time(1e9, lazy=False) == pytest.approx(1.2)
    assert restore_time(64 * MiB, lazy=True) == restore_time(1e9, lazy=True) == 0.1


def test_the_final_dump_fits_a_fixed_part_of_its_own_at_the_dumps_rate() -> None:
    # A paused container's dump (0.08 s + M/2 GB/s) against the pre-copy dumps' 0.19 s fixed.
    def final(size: float, lazy: bool = True) -> RoundRecord:
        dump_s = 0.08 + size / 2e9
        return RoundRecord(1e6, 0.1, 1e7, 0.05, final=True, lazy=lazy, dump_s=dump_s,
                           dumped_bytes=size, seconds=dump_s + 0.3)  # fmt: skip

    rounds = [
        RoundRecord(1e6, 0.1, 1e7, 0.05, dump_s=0.19 + size / 2e9, dumped_bytes=size)
        for size in (64 * MiB, 256 * MiB, 1024 * MiB) * 3
    ]
    finals = [final(size) for size in (64 * MiB, 1024 * MiB, 2048 * MiB)]
    # The final dump is the same whatever the restore after it: eager ones count too.
    fitted = calibrate(rounds + finals + [final(1024 * MiB, lazy=False)])
    assert fitted.final_dump_time is not None and fitted.final_dump_time.samples == 4
    assert fitted.final_dump_time.value == pytest.approx(0.08, abs=0.01)
    costs = fitted.costs()
    assert costs.final_dump_time_s == pytest.approx(0.08, abs=0.01)
    assert fit_final_dump(finals, None) is None  # no rate to hold: nothing fitted

    def downtime_and_freeze(c: Costs) -> tuple[float, float]:
        plan_of = plan(c.model_inputs(size=1e9, dirty_rate=MiB, bandwidth=1e8, rtt=0.05,
                                      downtime_target=0.3, max_rounds=8))  # fmt: skip
        return plan_of.downtime_s, max(plan_of.brownouts_s or [0.0])

    (down, freeze), (down_before, freeze_before) = map(
        downtime_and_freeze, (costs, replace(costs, final_dump_time_s=None))
    )
    # The downtime takes the final dump's fixed part; the pre-copy freezes keep theirs.
    assert down_before - down == pytest.approx(costs.dump_time_s - 0.08, abs=0.01)
    assert freeze == freeze_before


def test_a_hand_over_that_changed_is_fitted_to_its_own_runs_alone() -> None:
    # The grid's hand-overs (r0 0.4 s, 1 GB/s, j 1.5 over several RTTs) against the same
    # hand-over run now (r0 0.1 s, 4 GB/s, one RTT): its terms come from the runs now, j held.
    rng = np.random.default_rng(3)
    grid = synthetic_rounds(rng, 12, 0.0, final=True)

    def now(size: float) -> RoundRecord:
        dump_s = 0.08 + size / 2e9
        seconds = dump_s + 0.1 + 1e6 / 1e7 + 1.5 * 0.05 + size / 4e9
        return RoundRecord(1e6, 0.1, 1e7, 0.05, final=True, dump_s=dump_s, dumped_bytes=size,
                           seconds=seconds)  # fmt: skip

    recent = [now(size) for size in (64 * MiB, 256 * MiB, 1024 * MiB) * 2]
    before = calibrate(grid)
    fitted = calibrate(grid, now=recent)
    assert fitted.final_round_trips == before.final_round_trips  # j from every run
    assert fitted.restore_time is not None and fitted.restore_rate is not None
    assert fitted.restore_time.value == pytest.approx(0.1, abs=1e-6)
    assert fitted.restore_rate.value == pytest.approx(4e9, rel=1e-6)
    assert fitted.restore_time.samples == 6


def test_lazy_runs_of_now_over_several_rtts_refit_the_hand_overs_round_trips() -> None:
    # The grid's hand-over waited 1.5 round trips; the one run now waits 0.5 (its commit no
    # longer waits for the restore's answer): planned with the grid's j, it would be
    # over-predicted by a round trip at every RTT, most at 200 ms.
    rng = np.random.default_rng(5)
    grid = synthetic_rounds(rng, 12, 0.0, final=True)

    def now(rtt: float, lazy: bool, size: float = 256 * MiB) -> RoundRecord:
        dump_s = 0.08 + size / 2e9
        restore = 0.12 if lazy else 0.1 + size / 4e9
        seconds = dump_s + 1e6 / 1e7 + restore + 0.5 * rtt
        return RoundRecord(1e6, 0.1, 1e7, rtt, final=True, lazy=lazy, dump_s=dump_s,
                           dumped_bytes=size, seconds=seconds)  # fmt: skip

    recent = [now(rtt, lazy=True) for rtt in (0.005, 0.05, 0.2) * 2]
    recent += [now(0.05, lazy=False, size=size) for size in (64 * MiB, 1024 * MiB)]
    # A stop-and-copy's final round (round 0), its whole state's transfer off by seconds:
    # no pre-copy round before it, so no part in the hand-over's fit.
    recent.append(replace(now(0.05, lazy=True), index=0, seconds=5.0))
    fitted = calibrate(grid, now=recent)
    assert fitted.final_round_trips is not None and fitted.lazy_restore_time is not None
    assert fitted.final_round_trips.value == pytest.approx(0.5, rel=1e-6)
    assert fitted.lazy_restore_time.value == pytest.approx(0.12, abs=1e-6)
    # The eager runs (one RTT) are fitted holding the new j.
    assert fitted.restore_time is not None
    assert fitted.restore_time.value == pytest.approx(0.1, abs=1e-6)
    # Runs of one RTT cannot tell j apart: the grid's stands.
    # Runs of one RTT setting (measured a little apart) cannot tell j apart: the grid's stands.
    one_rtt = calibrate(grid, now=[now(rtt, lazy=True) for rtt in (0.047, 0.05, 0.056)])
    assert one_rtt.final_round_trips == calibrate(grid).final_round_trips


def test_one_record_gives_a_value_with_unknown_spread() -> None:
    work = fit_round_work([RoundRecord(1e6, 0.1, 1e7, 0.05, dump_s=0.1, seconds=0.5)])
    assert work is not None
    assert work["fixed"].value == pytest.approx(0.3)
    assert math.isinf(work["fixed"].stderr) and math.isinf(work["fixed"].residual_std)


def test_records_that_cannot_determine_a_term_leave_it_none() -> None:
    assert fit_round_work([RoundRecord(1e6, 0.1, 1e7, 0.05)]) is None  # no round time
    assert fit_dump([]) is None
    assert fit_handover([]) is None
    assert fit_dirty_set([]) is None
    assert calibrate([]) == Calibration()


def test_dirty_samples_that_bend_fit_the_working_set() -> None:
    rng = np.random.default_rng(3)
    rate, working_set = 10 * MiB, 64 * MiB
    intervals = np.array([0.25, 0.5, 1, 2, 4, 8, 16, 32])
    dirtied = working_set * -np.expm1(-rate * intervals / working_set)
    samples = [
        sample_over(t, y * (1 + 0.01 * rng.standard_normal()))
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
    samples = [sample_over(t, 3 * MiB * t) for t in (0.5, 1, 2, 4, 8)]
    fitted = fit_dirty_set(samples)
    assert fitted is not None
    d, w = fitted
    assert w is None
    assert d.value == pytest.approx(3 * MiB)


def test_calibrated_costs_reach_the_model_inputs_of_the_next_plan() -> None:
    rng = np.random.default_rng(1)
    records = synthetic_rounds(rng, 12, 0.0) + synthetic_rounds(rng, 12, 0.0, final=True)
    costs = calibrate(records).costs()
    inputs = costs.model_inputs(
        size=512 * MiB, dirty_rate=MiB, bandwidth=25e6, rtt=0.05, downtime_target=0.3,
        max_rounds=8,
    )  # fmt: skip
    assert inputs.round_trips == pytest.approx(2.0)
    assert inputs.round_overhead == pytest.approx(0.2 + 512 * MiB / 1e9)
    assert inputs.dump_time == pytest.approx(0.05)
    assert inputs.dump_rate == pytest.approx(4e8)
    assert inputs.restore_time == pytest.approx(0.4 + 512 * MiB / 8e8)
    assert inputs.final_round_trips == pytest.approx(1.5)
    # The plan charges what was fitted: round 0 freezes for a full dump (0.05 s + M/400 MB/s),
    # then sends M at 25 MB/s with 2 round trips, 0.2 s and a scan of M at 1 GB/s; the final
    # round dumps M again, sends its residual, makes 1.5 round trips and restores.
    p = plan(inputs)
    dump, scan = 0.05 + 512 * MiB / 4e8, 512 * MiB / 1e9
    assert p.per_round[0].seconds == pytest.approx(dump + 512 * MiB / 25e6 + 0.1 + 0.2 + scan)
    restore = 0.4 + 512 * MiB / 8e8
    final = p.final_round.bytes / 25e6
    assert p.downtime_s == pytest.approx(dump + final + 1.5 * 0.05 + restore)


def test_a_stream_slower_than_the_probe_is_its_own_rate_not_restore_or_scan_work() -> None:
    rng = np.random.default_rng(5)
    records = synthetic_rounds(rng, 12, 0.0, stream=5e8)
    records += synthetic_rounds(rng, 12, 0.0, final=True, stream=5e8)
    fitted = calibrate(records)
    assert fitted.stream_rate is not None and fitted.restore_rate is not None
    assert fitted.stream_rate.value == pytest.approx(5e8, rel=1e-6)
    assert fitted.restore_rate.value == pytest.approx(8e8, rel=1e-6)
    assert fitted.scan_rate is not None and fitted.scan_rate.value == pytest.approx(1e9, rel=1e-6)
    assert calibrate(synthetic_rounds(rng, 12, 0.0)).stream_rate is None  # transfers at B


def test_round_zero_is_fitted_apart_from_the_later_rounds() -> None:
    # Round 0 takes 0.5 s + 9 RTT more than the later rounds (sessions, TCP windows).
    rng = np.random.default_rng(7)
    later = [replace(r, index=1) for r in synthetic_rounds(rng, 12, 0.0)]
    first = [
        replace(r, index=0, seconds=(r.seconds or 0.0) + 0.5 + 9 * r.rtt)
        for r in synthetic_rounds(rng, 12, 0.0)
    ]
    fitted = calibrate(later + first + synthetic_rounds(rng, 12, 0.0, final=True))
    assert fitted.round_trips is not None and fitted.round_trips.value == pytest.approx(2.0)
    assert fitted.first_round_trips is not None
    assert fitted.first_round_trips.value == pytest.approx(9.0)
    assert fitted.first_round_fixed is not None
    assert fitted.first_round_fixed.value == pytest.approx(0.5)
    inputs = fitted.costs().model_inputs(
        size=64 * MiB, dirty_rate=MiB, bandwidth=1e8, rtt=0.1, downtime_target=0.3,
        max_rounds=8,
    )  # fmt: skip
    assert inputs.first_round_extra == pytest.approx(0.5 + 9 * 0.1)


def test_the_model_plans_with_the_probed_throughput_less_the_streams_own_work() -> None:
    def planned(costs: Costs) -> float:
        return costs.model_inputs(
            size=64 * MiB, dirty_rate=MiB, bandwidth=1e8, rtt=0.05, downtime_target=0.3,
            max_rounds=8,
        ).bandwidth  # fmt: skip

    assert planned(Costs()) == 1e8
    assert planned(Costs(stream_rate=4e8)) == pytest.approx(8e7)  # 1/(1/1e8 + 1/4e8)


def test_negative_fitted_times_are_clipped_before_they_reach_the_model() -> None:
    calibration = Calibration(dump_time=Estimate(-0.001, 0.002, 0.002, 5))
    assert calibration.costs().dump_time_s == 0.0
    assert calibration.costs(Costs(round_trips=7)).round_trips == 7


def test_recorded_costs_round_trip_and_a_stale_record_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    assert load_costs(path) == Costs()  # no record: the hand-set defaults
    fitted = Costs(round_trips=2.2, scan_rate=1.2e9)
    save_costs(fitted, {}, "test", path)
    assert load_costs(path) == fitted
    path.write_text('{"costs": {"round_trips": 2, "warp": 9}}')
    with pytest.raises(ValueError, match="unknown cost fields warp"):
        load_costs(path)


def test_fitted_costs_go_to_the_named_file_keeping_what_the_runs_cannot_determine(
    tmp_path: Path,
) -> None:
    path = tmp_path / "costs.json"
    before = {"stream_rate": {"stderr": 1e6, "residual_std": 0.1, "samples": 9}}
    on_file = Costs(round_trips=7.0, stream_rate=5e8)
    save_costs(on_file, before, "earlier runs", path)
    rng = np.random.default_rng(2)
    rounds = synthetic_rounds(rng, 12, 0.0) + synthetic_rounds(rng, 12, 0.0, final=True)
    measured = [{k: v for k, v in asdict(r).items() if k != "index"} for r in rounds]
    slow = [{**r, "seconds": 10 * r["seconds"]} for r in measured]  # a failed run's: not fitted
    rows = [{"ok": True, "measured_rounds": measured}, {"ok": False, "measured_rounds": slow}]
    held = write_costs(rows, path, "these runs")
    # The runs sent at the probed rate: no stream rate of their own, so the file's stays.
    assert held == ["stream_rate"]
    fitted = calibrate(records(rows[:1]), in_use=on_file).costs(on_file)
    assert load_costs(path) == fitted and fitted.stream_rate == 5e8
    assert fitted.round_trips != 7.0
    doc = json.loads(path.read_text())
    assert doc["source"] == "these runs; held: stream_rate"
    assert doc["spread"]["stream_rate"] == before["stream_rate"]
    # The later pre-copy rounds of the run that succeeded (round 0 is fitted apart).
    assert doc["spread"]["round_trips"]["samples"] == 11
