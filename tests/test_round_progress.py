"""A pre-copy round's progress as the engine reports it: the agent's lines become RoundProgress
events between the round's start and its end, with the rate over the last few seconds and the
time left for the planned bytes; streamed, never kept in the record (a scripted agent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from whimbrel.app.commands.migrate import ProgressPacing, describe
from whimbrel.backends import model
from whimbrel.backends.events import RoundFinished, RoundProgress, RoundStarted, event_json
from whimbrel.backends.migration_context import Journal
from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.precopy import precopy
from whimbrel.backends.round_progress import RoundMeter

INPUTS = model.ModelInputs(
    size=100e6, dirty_rate=1e6, bandwidth=25e6, rtt=0.04, round_trips=2, round_overhead=0.3
)
ANSWER = {
    "sent_bytes": 100e6,
    "state_bytes": 100e6,
    "freeze_s": 0.1,
    "send_s": 4.0,
    "dump_s": 0.1,
    "sessions_s": 0.0,
    "stripes": 1,
}


class ScriptedAgent:
    """Answers every round with progress lines at 25 MB/s, then ANSWER."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float]] = []

    async def exchange(self, line: str, idle_timeout: float) -> AsyncIterator[dict[str, Any]]:
        self.asked.append((line, idle_timeout))
        for tick in range(9):
            yield {"progress": {"round": 0, "sent": int(tick * 12.5e6), "t": tick / 2}}
        yield ANSWER


def _precopy_events() -> tuple[list[Any], Journal, ScriptedAgent]:
    journal = Journal(SimpleNamespace(measured_rounds=[]))  # type: ignore[arg-type]
    ctx = SimpleNamespace(
        request=MigrationRequest("c", "n", rounds=1), journal=journal, aborted=asyncio.Event()
    )
    prepared = SimpleNamespace(
        inputs=INPUTS,
        first_plan=model.plan(INPUTS),
        mode="iterative",
        rtt_s=0.04,
        bandwidth=25e6,
        src=SimpleNamespace(name="east-1"),
    )
    agent = ScriptedAgent()

    async def run() -> list[Any]:
        return [e async for e in precopy(ctx, prepared, agent)]  # type: ignore[arg-type]

    return asyncio.run(run()), journal, agent


def test_precopy_yields_the_rounds_progress_between_its_start_and_its_end() -> None:
    events, journal, agent = _precopy_events()
    kinds = [type(e) for e in events[:-1]]  # the last is what the rounds left
    assert kinds == [RoundStarted] + [RoundProgress] * 9 + [RoundFinished]
    progress = [e for e in events if isinstance(e, RoundProgress)]
    started = events[0]
    assert all(p.index == 0 and p.planned_bytes == started.planned_bytes for p in progress)
    assert [p.sent_bytes for p in progress] == [int(n * 12.5e6) for n in range(9)]
    assert progress[0].rate_bytes_per_s is None and progress[0].eta_s is None
    assert progress[4].rate_bytes_per_s == pytest.approx(25e6)
    assert progress[4].eta_s == pytest.approx((started.planned_bytes - 50e6) / 25e6)
    # A round is given up on a silence, not on its length.
    assert agent.asked == [("round 0", pytest.approx(660.0))]
    assert "RoundProgress" not in [e["event"] for e in journal.events]
    assert event_json(progress[4])["eta_s"] == progress[4].eta_s  # --json: as they are


def test_the_rate_is_over_the_last_few_seconds_of_the_nodes_clock() -> None:
    meter = RoundMeter(0, 1e9, window_s=3.0)
    for t in range(11):  # 10 MB/s for 10 s ...
        meter.event({"sent": t * 10_000_000, "t": t}, t)
    for t in range(11, 15):  # ... then 1 MB/s
        last = meter.event({"sent": 100_000_000 + (t - 10) * 1_000_000, "t": t}, t)
    assert last.rate_bytes_per_s == pytest.approx(1e6)  # the last 3 s alone
    assert last.eta_s == pytest.approx((1e9 - 104e6) / 1e6)


def test_no_time_left_is_guessed_on_a_stalled_link_or_past_the_plan() -> None:
    stalled = RoundMeter(0, 1e9)
    stalled.event({"sent": 5, "t": 0}, 0)
    assert stalled.event({"sent": 5, "t": 1}, 1).eta_s is None
    outgrown = RoundMeter(0, 100.0)
    outgrown.event({"sent": 50, "t": 0}, 0)
    late = outgrown.event({"sent": 150, "t": 1}, 1)
    assert late.rate_bytes_per_s == 100.0 and late.eta_s is None


def test_the_text_output_says_a_rounds_progress_at_most_every_five_seconds() -> None:
    pacing = ProgressPacing(every_s=5.0)
    assert pacing.says(RoundStarted(0, False, 1e9, 40.0, 10.0))
    said = [
        t / 2
        for t in range(20, 100)  # 10 s to 50 s into the migration, twice a second
        if pacing.says(RoundProgress(0, t, 1e9, t / 2 - 10, 25e6, 30.0, t / 2))
    ]
    assert said == [15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    line = describe(RoundProgress(0, 512 << 20, 1 << 30, 21.0, 25e6, 21.5, 31.0))
    assert line == "[  31.00s]    round 0: 512 MiB of 1 GiB sent, 200 Mbit/s, ~21.5 s left"
