"""A migration as it happens: the phase, each round's bytes predicted against sent, the live
log, and a summary that says where the container runs now. (An evacuation's migrations at
once have their own screen, evacuation_progress.py.)"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from whimbrel.app.backend import MigrationHandle
from whimbrel.app.changes import ConsoleStateChanged
from whimbrel.app.engine_events import name_of, rounds_began_at
from whimbrel.app.messages import MigrationProgress
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.rounds import RoundRows
from whimbrel.app.screens.base import (
    ConsoleScreen,
    against_prediction,
    colours_of,
    where_it_runs,
)
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundProgress,
    RoundStarted,
)
from whimbrel.backends.units import format_bandwidth, format_duration, format_size
from whimbrel.widgets.downtime_bar import DowntimeBar
from whimbrel.widgets.event_log import EventLog
from whimbrel.widgets.round_bars import RoundBars

STEPS = (Phase.PREFLIGHT, Phase.PRECOPY, Phase.FINAL, Phase.RESTORE, Phase.CLEANUP, Phase.DONE)
# From here on the container is frozen and on its way: an abort cannot roll it back any more.
POINT_OF_NO_RETURN = {Phase.FINAL, Phase.RESTORE, Phase.CLEANUP, Phase.DONE}
NO_ROLLBACK = (
    "the final round has started: the container is frozen and on its way; "
    "it can no longer be rolled back"
)


def phase_line(event: PhaseChanged) -> str:
    return f"phase: {event.phase.value}" + (f": {event.message}" if event.message else "")


def round_line(e: RoundFinished) -> str:
    """A finished round, for the log: sent against predicted, and what the model wants now."""
    name = "final round" if e.final else f"round {e.index}"
    text = (
        f"{name}: sent {format_size(e.sent_bytes)} in {format_duration(e.seconds)} "
        f"(predicted {format_size(e.planned_bytes)}), dirty {format_size(e.dirty_rate)}/s, "
        f"{format_bandwidth(e.throughput)}"
    )
    if e.freeze_s:
        text += f", frozen {format_duration(e.freeze_s)}"
    if not e.final:
        text += (
            f"; the model now wants {e.predicted_remaining_rounds} more round(s), downtime "
            f"{format_duration(e.predicted_downtime_s)}"
        )
    return text


def abort_or_close(action: str, done: bool) -> bool | None:
    """check_action of a screen following migrations: the footer shows what makes sense now,
    abort while they run, close once they ended."""
    if action == "abort":
        return not done
    if action == "close":
        return True if done else None
    return True


class ProgressScreen(ConsoleScreen, Screen[None]):
    # The log takes the keys (up and down scroll it), not the body around it: that scrolls
    # only on a short terminal, and tab reaches it there.
    AUTO_FOCUS = "#progress-log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "abort", "Abort", id="progress.abort"),
        Binding("escape", "close", "Close", id="progress.close"),
    ]

    def __init__(self, order: MigrationOrder) -> None:
        super().__init__()
        self.order = order
        self.phase: Phase | None = None
        self.events: list[MigrationEvent] = []  # in arrival order
        self.finished: MigrationFinished | None = None
        self.done = False
        self._handle: MigrationHandle | None = None
        self._rounds = RoundRows(order.plan, migration_running=True)
        self._awaiting_inventory = False
        self._ended_at = 0.0

    def compose(self) -> ComposeResult:
        colours = lambda: colours_of(self.app)  # noqa: E731 - read at each draw
        yield Header()
        # It scrolls on a short terminal: there the summary is scrolled to once it shows.
        with VerticalScroll(id="progress-body"):
            yield Static(id="progress-head")
            yield RoundBars(colours, id="progress-rounds")
            yield EventLog(colours, id="progress-log")
            # Next to the summary's "downtime ... (predicted ...)": where the outcome is read.
            yield DowntimeBar(colours, id="progress-downtime")
            yield Static(id="progress-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#progress-rounds").border_title = "Rounds: predicted against sent"
        self.query_one("#progress-log").border_title = "Log"
        self.query_one("#progress-summary").display = False
        self.console.migration_started(self.order.container.ref, self.order.target)
        self._show_head()
        self._show_rounds()
        self._show_downtime()
        # After the first layout: the breakpoint classes (themes/console.tcss) set the log's
        # width, and a log line keeps the width it was first drawn at.
        self.call_after_refresh(self._run)

    # --- the worker: events in, messages out -------------------------------------------------

    @work(exclusive=True, group="migration")
    async def _run(self) -> None:
        assert self.console.backend is not None
        self._handle = self.console.backend.migrate(self.order)
        try:
            async for event in self._handle.events():
                self.post_message(MigrationProgress(event))
        except Exception as exc:  # the engine broke: say so, and find the container
            self.post_message(MigrationProgress(self._engine_error(str(exc) or type(exc).__name__)))
        self._handle = None

    def _engine_error(self, error: str) -> MigrationFinished:
        order = self.order
        return MigrationFinished(
            ok=False,
            container=order.container.ref,
            src=order.container.node,
            dst=order.target,
            running_on="",
            mode="?",
            rounds=0,
            downtime_s=None,
            predicted_downtime_s=None,
            total_time_s=0.0,
            predicted_total_time_s=None,
            bytes_sent=0,
            predicted_bytes=None,
            error=error,
            extra={"engine_error": True},  # the outcome is unknown: look for it
        )

    # --- drawing -----------------------------------------------------------------------------

    def _show_head(self) -> None:
        colours = colours_of(self.app)
        order = self.order
        head = Table.grid(padding=(0, 1))
        head.add_column()
        title = Text.assemble(
            (order.container.name, f"bold {colours.get('accent', '')}"),
            f"  {order.container.node} → ",
            (order.target, "bold"),
        )
        head.add_row(title)
        steps = Text()
        reached = self.phase in STEPS and STEPS.index(self.phase)
        for i, step in enumerate(STEPS):
            if i:
                steps.append("  ›  ", style="dim")
            if step == self.phase:
                steps.append(f" {step.value} ", style=f"bold reverse {colours.get('primary', '')}")
            elif self.phase in STEPS and i < cast(int, reached):
                steps.append(step.value, style=colours.get("success", ""))
            else:
                steps.append(step.value, style="dim")
        if self.phase in (Phase.ROLLBACK, Phase.FAILED):
            steps.append(f"   {self.phase.value}", style=f"bold {colours.get('error', '')}")
        head.add_row(steps)
        self.query_one("#progress-head", Static).update(head)

    def _show_rounds(self) -> None:
        self.query_one(RoundBars).show_rounds(self._rounds.bars(), show_actual=True)

    def _show_downtime(self, finished: MigrationFinished | None = None) -> None:
        """The plan's downtime parts while the migration runs; once it finished, the measured
        parts against the predicted ones (the engine's prediction if it sent one)."""
        plan = self.order.plan
        predicted = plan.downtime_parts if plan is not None else None
        bar = self.query_one(DowntimeBar)
        if finished is None:
            bar.border_title = "Downtime: predicted"
            bar.show_parts(predicted)
            return
        bar.border_title = "Downtime: measured against predicted"
        bar.show_parts(
            finished.predicted_downtime_parts or predicted,
            finished.downtime_parts if finished.ok else None,
            note=(
                "none: the hand-over reported no parts"
                if finished.ok
                else "none: the migration failed"
            ),
        )

    @on(MigrationProgress)
    def _progress(self, message: MigrationProgress) -> None:
        event = message.event
        self.events.append(event)
        log = self.query_one(EventLog)
        if isinstance(event, PhaseChanged):
            self.phase = event.phase
            log.add(event.t, phase_line(event))
            self._show_head()
        elif isinstance(event, (RoundStarted, RoundProgress)):
            self._rounds.add(event)
            self._show_rounds()
        elif isinstance(event, RoundFinished):
            self._rounds.add(event)
            log.add(event.t, round_line(event))
            self._show_rounds()
        elif isinstance(event, LogLine):
            log.add(event.t, event.text, event.level)
        elif isinstance(event, MigrationFinished):
            self._finished(event)

    def _finished(self, event: MigrationFinished) -> None:
        self.finished = event
        self._show_downtime(event)
        self.done = True
        self._ended_at = time.monotonic()
        self.refresh_bindings()
        name = name_of(event.container)
        moved = [(f"{event.src}/{name}", event.running_on)] if event.ok else []
        self.console.migrations_ended(name, moved)
        self._show_summary()

    def _show_summary(self) -> None:
        assert self.finished is not None
        colours = colours_of(self.app)
        summary = self.query_one("#progress-summary", Static)
        grid = Table.grid(padding=(0, 1))
        grid.add_column()
        grid.add_row(self._result_text(self.finished, self.events, colours))
        grid.add_row(Text("esc closes this screen.", style="dim"))
        summary.update(grid)
        summary.display = True
        ok = self.finished.ok
        summary.set_class(not ok, "-failed")
        summary.border_title = "Done" if ok else "Stopped"
        # Where the container runs now is the one thing to read at the end, on any terminal:
        # the summary is last, so the body keeps to its end as the panels above settle their
        # heights (until the operator scrolls).
        self.query_one("#progress-body").anchor()

    @staticmethod
    def _times(r: MigrationFinished, events: Sequence[MigrationEvent]) -> str:
        """The model predicts the rounds, not the preflight before them: compare like with
        like."""
        began = rounds_began_at(events)
        if began is None:
            return f"total {format_duration(r.total_time_s)}"
        rounds = against_prediction(
            r.total_time_s - began, r.predicted_total_time_s, format_duration
        )
        return (
            f"total {format_duration(r.total_time_s)}: preflight {format_duration(began)}, "
            f"rounds {rounds}"
        )

    def _result_text(
        self, r: MigrationFinished, events: Sequence[MigrationEvent], c: Mapping[str, str]
    ) -> Text:
        if r.ok:
            text = Text.assemble(
                ("✓ ", c.get("success", "")),
                (name_of(r.container), "bold"),
                f" now runs on {r.running_on}",
                f" ({r.mode}, {r.rounds} pre-copy round{'s' if r.rounds != 1 else ''}).\n",
                "  downtime ",
                (against_prediction(r.downtime_s, r.predicted_downtime_s, format_duration), "bold"),
                "; sent ",
                against_prediction(r.bytes_sent, r.predicted_bytes, format_size),
                f"\n  {self._times(r, events)}",
            )
            if r.brownouts_s:
                text.append(
                    f"\n  brownouts: {len(r.brownouts_s)}, longest "
                    f"{format_duration(max(r.brownouts_s))}"
                )
            return text
        name = name_of(r.container)
        what = (
            f" stopped with an engine error in {self.phase.value if self.phase else 'preflight'}: "
            if r.extra.get("engine_error")
            else " was not migrated: "
        )
        return Text.assemble(
            ("✗ ", c.get("error", "")),
            (name, "bold"),
            what,
            (r.error or "aborted", c.get("error", "")),
            f"\n  {self._running_on(r)}",
        )

    def _running_on(self, r: MigrationFinished) -> str:
        name = name_of(r.container)
        where = where_it_runs(
            self.console.observed, name, r.running_on, r.src, r.dst, self._ended_at
        )
        if where is None:
            self._awaiting_inventory = True  # the inventory refresh of migrations_ended will tell
            return f"Looking for {name} on the nodes…"
        return where

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        if self._awaiting_inventory:
            self._show_summary()

    def on_screen_resume(self) -> None:
        self._state_changed()  # an inventory that came while help covered it

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return abort_or_close(action, self.done)

    def action_abort(self) -> None:
        if self.done or self._handle is None:
            self.notify("nothing is running", timeout=2)
            return
        if self.phase in POINT_OF_NO_RETURN:
            self.notify(NO_ROLLBACK, severity="warning")
            return
        self._handle.abort()
        elapsed_s = self.events[-1].t if self.events else 0.0
        self.query_one(EventLog).add(elapsed_s, "abort requested: rolling back", "warning")

    def action_close(self) -> None:
        if not self.done:
            self.notify("a migration is running: a aborts it", timeout=3)
            return
        self.app.pop_screen()
