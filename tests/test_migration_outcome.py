"""What a migration's outcome leaves pending for `recover`, and how a phase's events are relayed
with its result kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.events import LogLine, MigrationEvent
from whimbrel.backends.migration_context import PhaseRun
from whimbrel.backends.outcome import Delivered, Outcome


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


def _lazy_done(said: dict) -> Outcome:
    parts = DowntimeParts(0, 0, 0, 0, 0, 0, 0)
    outcome = Outcome(ok=True, running_on="west-1")
    outcome.delivered = Delivered(
        "iterative", 1, 0.5, parts, 0.5, parts, 9.0, 1e6, 1e6, (), {"lazy_restore": True}
    )
    outcome.link_revoked(said)
    return outcome


def test_a_lazy_fill_summed_up_by_its_daemon_raises_nothing() -> None:
    fill = {"fill_s": 0.5, "pages": 10, "of": 10}
    outcome = _lazy_done({"lazy_fill_wait_s": 0.1, "lazy_fill": fill})
    assert outcome.lazy_fill == fill and outcome.lazy_fill_unconfirmed() is None


def test_a_lazy_daemon_that_ended_without_its_summary_is_reported() -> None:
    # Killed mid-fill, it leaves no summary: the pages it never filled read as zeros.
    outcome = _lazy_done({"lazy_fill_wait_s": 0.1, "lazy_fill": None})
    assert "without summing up its fill" in (outcome.lazy_fill_unconfirmed() or "")


def test_a_lazy_daemon_still_filling_is_its_own_warning_not_a_lost_fill() -> None:
    outcome = _lazy_done({"lazy_fill_wait_s": 40.0, "warning": "a lazy restore's fill runs on"})
    assert outcome.lazy_fill_unconfirmed() is None
    assert outcome.warnings == ["target: a lazy restore's fill runs on"]


def test_a_phase_s_events_pass_in_order_and_its_result_is_kept() -> None:
    texts, run = _run(result=True)
    assert texts == ["one", "two"] and run.result == 42


def test_a_phase_that_ends_without_its_result_is_an_error() -> None:
    _, run = _run(result=False)
    with pytest.raises(RuntimeError):
        _ = run.result
