"""The running round's bar while it sends: the bytes so far drawn to the rounds' scale, and how
far it got (so far of planned, rate, time left) under the bars, as progress events arrive; on
the progress screen as the engine's events reach it."""

from __future__ import annotations

import io
import re

from rich.console import Console
from textual.app import App, ComposeResult

from tests.console.conftest import SIZE
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import until
from tests.console.test_migration_flow import _migrating
from whimbrel.app.messages import MigrationProgress
from whimbrel.app.rounds import RoundRows
from whimbrel.backends.events import RoundFinished, RoundProgress, RoundStarted
from whimbrel.widgets.round_bars import RoundBars

MiB = 1 << 20
STARTED = RoundStarted(1, False, 40 * MiB, 2.0, 10.0)
HALFWAY = RoundProgress(1, 20 * MiB, 40 * MiB, 1.0, 24e6, 0.874, 11.2)
FINISHED = RoundFinished(
    1, False, 40 * MiB, 41 * MiB, 1024 * MiB, 2.1, 0.05, 1e6, 24e6, 0.96, 0, 0.3, 12.1
)


class _BarsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RoundBars(lambda: self.theme_variables)


def _drawn(bars: RoundBars) -> list[str]:
    console = Console(width=bars.size.width, file=io.StringIO(), record=True)
    console.print(bars.render())
    return console.export_text().splitlines()


async def test_a_sending_round_shows_its_bytes_rate_and_time_left_until_it_ends() -> None:
    app = _BarsApp()
    async with app.run_test(size=(120, 8)) as pilot:
        bars = app.query_one(RoundBars)
        rows = RoundRows(migration_running=True)
        rows.add(STARTED)
        bars.show_rounds(rows.bars(), show_actual=True)
        await pilot.pause()
        assert "running…" in _drawn(bars)[1] and bars.border_subtitle == ""
        rows.add(HALFWAY)
        bars.show_rounds(rows.bars(), show_actual=True)
        await pilot.pause()
        row = _drawn(bars)[1]
        assert "20 MiB …" in row and "running…" not in row
        # Half the planned bytes: the sent bar is half the predicted one, on one scale.
        predicted, sent = re.findall("█+", row)
        assert len(predicted) == 2 * len(sent)
        assert bars.border_subtitle == "round 1: 20 MiB of 40 MiB sent, 192 Mbit/s, 874 ms left"
        rows.add(FINISHED)
        bars.show_rounds(rows.bars(), show_actual=True)
        await pilot.pause()
        assert "41 MiB  2.1 s" in _drawn(bars)[1] and bars.border_subtitle == ""


async def test_the_progress_screen_draws_the_engines_round_progress(make_app) -> None:
    app = make_app(FakeBackend(hold_migrations=True))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _migrating(pilot)
        await until(pilot, lambda: any(isinstance(e, RoundFinished) for e in screen.events))
        for event in (STARTED, HALFWAY):
            screen.post_message(MigrationProgress(event))
        bars = screen.query_one(RoundBars)
        await until(pilot, lambda: bars.border_subtitle.startswith("round 1: 20 MiB of"))
        app.backend.migrations[0].release()
        await until(pilot, lambda: screen.done)
        assert bars.border_subtitle == ""  # round 1 ended: its bar shows what it sent
