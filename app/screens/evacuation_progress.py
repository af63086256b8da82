"""An evacuation as it happens: its migrations side by side, one row each (target, phase, how
far its round got: sent of planned, rate, time left; once done, its downtime against the plan),
the highlighted one's rounds predicted against sent, every migration's log on one clock, and an
overall line (running, moved, failed, elapsed against the plan's total). When all ended, a
summary: where each container runs now, the wall time against the plan and against the
migrations' own times added up. Drawn on the events only: no timer runs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from whimbrel.app.backend import EvacuationHandle
from whimbrel.app.changes import ConsoleStateChanged
from whimbrel.app.engine_events import name_of
from whimbrel.app.messages import EvacuationProgress
from whimbrel.app.rounds import RoundRows
from whimbrel.app.screens.base import (
    ConsoleScreen,
    against_prediction,
    colours_of,
    where_it_runs,
)
from whimbrel.app.screens.progress import (
    NO_ROLLBACK,
    POINT_OF_NO_RETURN,
    abort_or_close,
    phase_line,
    round_line,
)
from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.evacuation import (
    EvacuationFinished,
    EvacuationPlan,
    Move,
    MoveEvent,
    MoveResult,
    MoveStarted,
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
from whimbrel.backends.units import format_duration, format_size
from whimbrel.widgets.event_log import EventLog
from whimbrel.widgets.round_bars import RoundBars, bar

BAR_WIDTH = 12  # a row's bar of its round's bytes: the words after it fit 80 columns
# What a migration does in a phase with no round sending, in a row's words.
DOING = {
    Phase.PREFLIGHT: "preflight: checks on both nodes",
    Phase.PRECOPY: "pre-copy",
    Phase.FINAL: "final round: frozen, on its way",
    Phase.RESTORE: "restoring on the target",
    Phase.CLEANUP: "cleaning up",
    Phase.ROLLBACK: "rolling back",
    Phase.DONE: "done",
    Phase.FAILED: "failed",
}


@dataclass
class Track:
    """One migration of the evacuation, as the screen follows it."""

    move: Move
    rounds: RoundRows
    started_s: float | None = None  # from the evacuation's start
    phase: Phase | None = None
    note: str = ""  # the last phase change's message
    finished: MigrationFinished | None = None
    result: MoveResult | None = None  # once the whole evacuation ended

    @property
    def name(self) -> str:
        return name_of(self.move.ref)

    @property
    def running(self) -> bool:
        return self.started_s is not None and self.finished is None and self.result is None

    @property
    def kind(self) -> str:
        """moved, failed, not started (it never will), waiting or running."""
        if self.finished is not None:
            return "moved" if self.finished.ok else "failed"
        if self.result is not None:  # ended without an outcome of its own
            return "not started" if self.started_s is None else "failed"
        return "waiting" if self.started_s is None else "running"


class EvacuationProgressScreen(ConsoleScreen, Screen[None]):
    # The rows take the keys: up and down pick the one whose rounds show below them.
    AUTO_FOCUS = "#evacuation-moves"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "abort", "Abort", id="evacuation.abort"),
        Binding("escape", "close", "Close", id="evacuation.close"),
    ]

    def __init__(self, plan: EvacuationPlan, template: MigrationRequest) -> None:
        super().__init__()
        self.plan, self.template = plan, template
        self.tracks = {
            m.ref: Track(m, RoundRows(m.plan, migration_running=True)) for m in plan.moves
        }
        self.finished: EvacuationFinished | None = None
        self.done = False
        self.aborted = False
        self.elapsed_s = 0.0  # from the evacuation's start, as far as its events tell
        self._handle: EvacuationHandle | None = None
        self._awaiting_inventory = False
        self._ended_at = 0.0

    def compose(self) -> ComposeResult:
        colours = lambda: colours_of(self.app)  # noqa: E731 - read at each draw
        yield Header()
        # The single migration's ids: its styles (themes/console.tcss) serve both screens.
        with VerticalScroll(id="progress-body"):
            yield Static(id="progress-head")
            yield OptionList(id="evacuation-moves")
            yield RoundBars(colours, id="progress-rounds")
            yield EventLog(colours, id="progress-log")
            yield Static(id="progress-summary")
        yield Footer()

    def on_mount(self) -> None:
        rows = self.query_one("#evacuation-moves", OptionList)
        rows.border_title = f"Migrations, {self.plan.concurrency} at once"
        rows.add_options(Option(self._row(t), id=ref) for ref, t in self.tracks.items())
        rows.highlighted = 0
        self.query_one("#progress-log").border_title = "Log"
        self.query_one("#progress-summary").display = False
        for move in self.plan.moves:
            self.console.migration_started(move.ref, move.target)
        self._show_head()
        self._show_rounds()
        # After the first layout: a log line keeps the width it was first drawn at.
        self.call_after_refresh(self._run)

    # --- the worker: events in, messages out -------------------------------------------------

    @work(exclusive=True, group="evacuation")
    async def _run(self) -> None:
        assert self.console.backend is not None
        self._handle = self.console.backend.evacuate(self.plan, self.template)
        began = time.monotonic()
        try:
            async for item in self._handle.events():
                self.post_message(EvacuationProgress(item))
        except Exception as exc:  # the runner broke (a migration's failure is its result)
            error = f"the evacuation broke: {str(exc) or type(exc).__name__}"
            self.post_message(EvacuationProgress(self._unknown(error, time.monotonic() - began)))
        self._handle = None

    def _unknown(self, error: str, wall_s: float) -> EvacuationFinished:
        """Every outcome unknown: a fresh inventory says where each container runs."""
        results = tuple(
            MoveResult(m.ref, m.target, False, "unknown", None, None, error=error)
            for m in self.plan.moves
        )
        return EvacuationFinished(results, wall_s, self.plan.total_time_s)

    # --- events ------------------------------------------------------------------------------

    @on(EvacuationProgress)
    def _progress(self, message: EvacuationProgress) -> None:
        item = message.item
        if isinstance(item, MoveStarted):
            track = self.tracks[item.ref]
            track.started_s = item.t
            self.elapsed_s = max(self.elapsed_s, item.t)
            self._log(track, 0.0, f"starts, to {item.target}")
            self._show_row(track)
        elif isinstance(item, MoveEvent):
            self._event(self.tracks[item.ref], item.event)
        else:
            self._finished(item)
        self._show_head()

    def _event(self, track: Track, event: MigrationEvent) -> None:
        if track.started_s is not None:
            self.elapsed_s = max(self.elapsed_s, track.started_s + event.t)
        if isinstance(event, PhaseChanged):
            track.phase, track.note = event.phase, event.message
            self._log(track, event.t, phase_line(event))
        elif isinstance(event, (RoundStarted, RoundProgress)):
            track.rounds.add(event)
        elif isinstance(event, RoundFinished):
            track.rounds.add(event)
            self._log(track, event.t, round_line(event))
        elif isinstance(event, LogLine):
            self._log(track, event.t, event.text, event.level)
        elif isinstance(event, MigrationFinished):
            track.finished = event
        self._show_row(track)
        if track is self._highlighted():
            self._show_rounds()

    def _log(self, track: Track, t: float, text: str, level: str = "info") -> None:
        """A line of one migration's log, on the evacuation's clock."""
        self.query_one(EventLog).add((track.started_s or 0.0) + t, f"{track.name}: {text}", level)

    def _finished(self, finished: EvacuationFinished) -> None:
        self.finished, self.done = finished, True
        self._ended_at = time.monotonic()
        for result in finished.results:
            self.tracks[result.ref].result = result
            self._show_row(self.tracks[result.ref])
        self.refresh_bindings()
        moved = [r for r in finished.results if r.ok]
        self.console.migrations_ended(
            name_of(moved[0].ref) if moved else None, [(r.ref, r.running_on) for r in moved]
        )
        self._show_summary()

    @on(OptionList.OptionHighlighted, "#evacuation-moves")
    def _highlight_changed(self) -> None:
        self._show_rounds()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        if self._awaiting_inventory:
            self._show_summary()

    def on_screen_resume(self) -> None:
        self._state_changed()  # an inventory that came while help covered it

    # --- drawing -----------------------------------------------------------------------------

    def _highlighted(self) -> Track | None:
        option = self.query_one("#evacuation-moves", OptionList).highlighted_option
        return self.tracks.get(option.id) if option is not None and option.id else None

    def _show_head(self) -> None:
        colours = colours_of(self.app)
        kinds = Counter(t.kind for t in self.tracks.values())
        count = len(self.tracks)
        head = Text.assemble(
            "Evacuating ",
            (f"{count} container{'s' if count != 1 else ''}", "bold"),
            f", {self.plan.concurrency} at once",
            f" ({len(self.plan.stays)} staying where they are)\n" if self.plan.stays else "\n",
            f"running {kinds['running']} · ",
            (f"moved {kinds['moved']}", colours.get("success", "") if kinds["moved"] else ""),
            " · ",
            (f"failed {kinds['failed']}", colours.get("error", "") if kinds["failed"] else ""),
            f" · waiting {kinds['waiting']}",
        )
        if kinds["not started"]:
            head.append(f" · not started {kinds['not started']}")
        head.append("   ")
        planned = format_duration(self.plan.total_time_s)
        if self.finished is not None:
            head.append(f"took {format_duration(self.finished.wall_s)} (planned {planned})")
        else:
            head.append(f"{format_duration(self.elapsed_s)} of {planned} planned")
        if self.aborted and not self.done:
            head.append("   aborting", style=f"bold {colours.get('warning', '')}")
        self.query_one("#progress-head", Static).update(head)

    def _show_row(self, track: Track) -> None:
        rows = self.query_one("#evacuation-moves", OptionList)
        rows.replace_option_prompt(track.move.ref, self._row(track))

    def _row(self, track: Track) -> Table:
        """Two lines: the container, its path and its state; then what it is doing."""
        colours = colours_of(self.app)
        mark, state, style = self._state(track, colours)
        first = Text.assemble(
            (f"{mark} ", style),
            (track.name, "bold"),
            f"  {track.move.src} → ",
            (track.move.target, "bold"),
            "  ",
            (state, style),
        )
        grid = Table.grid()
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_row(first)
        grid.add_row(Text("  ").append_text(self._doing(track, colours)))
        return grid

    @staticmethod
    def _state(track: Track, colours: Mapping[str, str]) -> tuple[str, str, str]:
        """A mark, a word and their style."""
        kind = track.kind
        if kind == "moved":
            return "✓", kind, colours.get("success", "")
        if kind == "waiting":
            return "○", kind, "dim"
        if kind == "running":  # not the primary colour: the highlighted row's background
            phase = track.phase.value if track.phase else "starting"
            return "●", phase, f"bold {colours.get('accent', '')}"
        return "✗", kind, colours.get("error", "")

    def _doing(self, track: Track, colours: Mapping[str, str]) -> Text:
        move, f, result = track.move, track.finished, track.result
        if f is not None and f.ok:
            downtime = against_prediction(
                f.downtime_s, move.plan.downtime_s, format_duration, label="planned "
            )
            took = against_prediction(
                f.total_time_s, move.duration_s, format_duration, label="planned "
            )
            return Text(f"downtime {downtime}; took {took}")
        if f is not None or result is not None:
            error = (f.error if f else None) or (result.error if result else None) or "aborted"
            return Text(error, style=colours.get("error", ""))
        if track.started_s is None:
            if self.aborted:
                return Text("will not start: the evacuation was aborted", style="dim")
            return Text(f"waits its turn: planned to start at +{move.start_s:.1f} s", style="dim")
        sending = next((r for r in track.rounds.bars() if r.how_far()), None)
        if sending is not None:
            done = bar(sending.sent_so_far or 0.0, sending.predicted_bytes or 0.0, BAR_WIDTH)
            return Text.assemble(
                (done, colours.get("chart-actual", "")),
                ("·" * (BAR_WIDTH - len(done)), "dim"),
                f"  {sending.how_far()}",
            )
        started = next((r for r in track.rounds.bars() if r.running), None)
        if track.phase == Phase.PRECOPY and started is not None:
            planned = format_size(started.predicted_bytes or 0)
            return Text(f"round {started.label}: {planned} planned")
        doing = DOING.get(track.phase, "starting") if track.phase else "starting"
        return Text(f"{doing}: {track.note}" if track.note else doing, style="dim")

    def _show_rounds(self) -> None:
        track = self._highlighted()
        rounds = self.query_one(RoundBars)
        if track is None:
            return
        rounds.border_title = f"{track.name}: rounds, predicted against sent"
        rounds.show_rounds(track.rounds.bars(), show_actual=True)

    def _show_summary(self) -> None:
        finished = self.finished
        assert finished is not None
        colours = colours_of(self.app)
        self._awaiting_inventory = False
        grid = Table.grid(padding=(0, 1))
        grid.add_column()
        for result in finished.results:
            grid.add_row(self._result_text(self.tracks[result.ref], result, colours))
        moved = sum(1 for r in finished.results if r.ok)
        grid.add_row(
            Text.assemble(
                (f"{moved} of {len(finished.results)} moved", "bold"),
                f" in {format_duration(finished.wall_s)} "
                f"(planned {format_duration(finished.planned_s)}); the migrations' own times "
                f"add up to {format_duration(finished.migrations_s)}.",
            )
        )
        grid.add_row(Text("esc closes this screen.", style="dim"))
        summary = self.query_one("#progress-summary", Static)
        summary.update(grid)
        summary.display = True
        summary.set_class(not finished.ok, "-failed")
        summary.border_title = "Done" if finished.ok else "Ended"
        # Where each container runs now is what to read at the end, on any terminal.
        self.query_one("#progress-body").anchor()

    def _result_text(self, track: Track, r: MoveResult, c: Mapping[str, str]) -> Text:
        if r.ok:
            return Text.assemble(
                ("✓ ", c.get("success", "")),
                (track.name, "bold"),
                f" now runs on {r.running_on}: ",
                self._doing(track, c),
            )
        where = where_it_runs(
            self.console.observed,
            track.name,
            r.running_on,
            track.move.src,
            r.target,
            self._ended_at,
        )
        if where is None:
            self._awaiting_inventory = True  # the inventory refresh of migrations_ended will tell
            where = f"Looking for {track.name} on the nodes…"
        never = track.started_s is None
        error = r.error or "aborted"
        return Text.assemble(
            ("✗ ", c.get("error", "")),
            (track.name, "bold"),
            " was not started: " if never else " was not moved: ",
            (error.removeprefix("not started: ") if never else error, c.get("error", "")),
            f"\n  {where}",
        )

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return abort_or_close(action, self.done)

    def action_abort(self) -> None:
        if self.done or self._handle is None:
            self.notify("nothing is running", timeout=2)
            return
        if self.aborted:
            self.notify("aborting already: the running migrations roll back", timeout=3)
            return
        running = [t for t in self.tracks.values() if t.running]
        gone = [t.name for t in running if t.phase in POINT_OF_NO_RETURN]
        waiting = any(t.started_s is None for t in self.tracks.values())
        if gone:
            self.notify(f"{', '.join(gone)}: {NO_ROLLBACK}", severity="warning")
        if len(gone) == len(running) and not waiting:
            return  # nothing left that an abort would stop
        self.aborted = True
        self._handle.abort()
        self.query_one(EventLog).add(
            self.elapsed_s,
            "abort requested: no further migration starts; the running ones roll back at "
            "their next round boundary",
            "warning",
        )
        for track in self.tracks.values():
            if track.started_s is None:
                self._show_row(track)
        self._show_head()

    def action_close(self) -> None:
        if not self.done:
            self.notify("an evacuation is running: a aborts it", timeout=3)
            return
        self.app.pop_screen()
