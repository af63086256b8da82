"""What a migration's outcome leaves pending for `recover`, and how a phase's events are relayed
with its result kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from whimbrel.backends.events import LogLine, MigrationEvent
from whimbrel.backends.migration_context import PhaseRun
from whimbrel.backends.outcome import Outcome


def test_a_hand_over_with_its_end_unknown_stays_pending_for_the_hand_over() -> None:
    outcome = Outcome(handover="running")
    assert outcome.unsettled() and outcome.for_recover()
    outcome.cleanup_failed("release on east-1: gone")
    assert outcome.pending_for() == "handover"  # it outranks a cleanup cut short


def test_a_committed_source_not_yet_removed_is_for_recover_but_may_be_cleaned_around() -> None:
    outcome = Outcome(ok=True, handover="source left")
    assert outcome.for_recover() and not outcome.unsettled()
    assert outcome.pending_for() == "handover"


def test_a_cleanup_cut_short_is_pending_for_cleanup_with_its_warning() -> None:
    outcome = Outcome(ok=True, handover="settled")
    assert outcome.pending_for() is None
    outcome.cleanup_failed("target cleanup: gone")
    assert outcome.pending_for() == "cleanup" and outcome.warnings == ["target cleanup: gone"]


async def _phase(result: bool) -> AsyncIterator[MigrationEvent | int]:
    yield LogLine("one", 0.0)
    yield LogLine("two", 1.0)
    if result:
        yield 42


def _run(result: bool) -> tuple[list[str], PhaseRun[int]]:
    run = PhaseRun(_phase(result))

    async def drain() -> list[str]:
        return [e.text async for e in run if isinstance(e, LogLine)]

    return asyncio.run(drain()), run


def test_a_phase_s_events_pass_in_order_and_its_result_is_kept() -> None:
    texts, run = _run(result=True)
    assert texts == ["one", "two"] and run.result == 42


def test_a_phase_that_ends_without_its_result_is_an_error() -> None:
    _, run = _run(result=False)
    with pytest.raises(RuntimeError):
        _ = run.result
