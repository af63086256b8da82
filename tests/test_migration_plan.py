"""The mode and plan preflight settles on before the rounds, from the request and the model."""

from __future__ import annotations

from whimbrel.app.planning import PathMeasurements, plan_for
from whimbrel.backends.costs import DEFAULT_COSTS
from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.model import ModelInputs, plan
from whimbrel.backends.preflight import choose_plan, model_inputs_for

MiB = 2**20
# The README's examples: iterating pays for the first; the second is better stopped and copied.
ITERATES = ModelInputs(size=512 * MiB, dirty_rate=8 * MiB, bandwidth=25e6, rtt=0.05)
STOPS = ModelInputs(size=1 * MiB, dirty_rate=8 * MiB, bandwidth=25e6, rtt=0.15)


def _request(**kw: object) -> MigrationRequest:
    return MigrationRequest("east-1/kv", "west-1", **kw)  # type: ignore[arg-type]


def test_auto_follows_the_model_s_verdict() -> None:
    assert plan(ITERATES).verdict == "iterate" and plan(STOPS).verdict != "iterate"
    mode, first = choose_plan(_request(), ITERATES)
    assert mode == "iterative" and first.rounds == plan(ITERATES).rounds
    mode, first = choose_plan(_request(), STOPS)
    assert mode == "stop-and-copy" and first.rounds == 0


def test_a_requested_mode_overrules_the_verdict() -> None:
    mode, first = choose_plan(_request(mode="stop-and-copy"), ITERATES)
    assert mode == "stop-and-copy" and first.rounds == 0
    # Iterating where the model would not: at least one round is planned.
    mode, first = choose_plan(_request(mode="iterative"), STOPS)
    assert mode == "iterative" and first.rounds == 1


def test_fixed_rounds_overrule_mode_and_model() -> None:
    mode, first = choose_plan(_request(mode="stop-and-copy", rounds=3), STOPS)
    assert mode == "iterative" and first.rounds == 3
    mode, first = choose_plan(_request(rounds=0), ITERATES)
    assert mode == "stop-and-copy" and first.rounds == 0


def test_the_engine_and_the_console_plan_with_the_sampled_share_of_distinct_pages() -> None:
    engine = model_inputs_for(
        DEFAULT_COSTS,
        _request(),
        size=512 * MiB,
        dirty_rate=8 * MiB,
        distinct_share=0.25,
        bandwidth=25e6,
        rtt_s=0.05,
    )
    console = plan_for(PathMeasurements(512 * MiB, 8 * MiB, 0.05, 25e6, 0.25), 0.3)
    assert console is not None and engine.distinct_share == 0.25
    assert console.inputs == engine
    assert plan(engine, "stop-and-copy").bytes_sent == 128 * MiB
