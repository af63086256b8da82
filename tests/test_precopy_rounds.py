"""A pre-copy round as the model takes it, from the source agent's answer and the engine's
clock: what the container ran for, the dirty rate it shows, the fixed work per round."""

from __future__ import annotations

import pytest

from whimbrel.backends.model import ModelInputs
from whimbrel.backends.precopy import measure_round

INPUTS = ModelInputs(
    size=300e6, dirty_rate=2e6, bandwidth=25e6, rtt=0.04, round_trips=2, round_overhead=0.3
)


def _answer(sent: float, freeze: float = 0.1) -> dict[str, float]:
    return {"sent_bytes": sent, "state_bytes": 300e6, "freeze_s": freeze, "send_s": sent / 25e6}


def test_round_zero_keeps_the_probed_dirty_rate_and_the_planned_overhead() -> None:
    inputs, measured = measure_round(INPUTS, 0.04, 0, _answer(300e6), seconds=13.1, ran_prev=0.0)
    assert inputs == INPUTS  # round 0 also opens sessions and hashes everything: no sample
    assert measured.seconds == pytest.approx(13.0)  # the freeze is not running time
    assert measured.dirty_rate == INPUTS.dirty_rate
    assert measured.bytes == 300e6 and measured.throughput == INPUTS.bandwidth


def test_a_later_round_measures_the_dirty_rate_and_the_overhead() -> None:
    inputs, measured = measure_round(INPUTS, 0.04, 1, _answer(20e6), seconds=1.6, ran_prev=10.0)
    # 20 MB dirtied while the previous round ran 10 s unfrozen.
    assert measured.dirty_rate == pytest.approx(2e6)
    # 1.5 s unfrozen, 0.8 s of it the transfer, 2 x 40 ms round trips: 0.62 s of fixed work.
    assert measured.seconds == pytest.approx(1.5)
    assert inputs.round_overhead == pytest.approx(0.62)


def test_the_overhead_is_never_negative_and_a_round_never_takes_no_time() -> None:
    inputs, measured = measure_round(INPUTS, 0.04, 2, _answer(20e6, freeze=2.0), 1.0, 1.0)
    assert inputs.round_overhead == 0.0
    assert measured.seconds == pytest.approx(1e-3)
