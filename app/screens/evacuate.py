"""Evacuate: several containers (the marked ones, or a whole node) moved to other nodes, several
at once within the link, planned by the planner `whimbrel evacuate` uses (backends/evacuation):
each row's target, mode, rounds, downtime, time and planned start, the evacuation's total
against one after another, and the containers that stay, with the reason.

Opening it measures what the plan needs that is not known yet: each container's dirty rate
(a few samples; the main screen's sampler is paused meanwhile, two samplers would hide each
other's pages) and the RTT and throughput of each distinct path, one path at a time. Targets
are placed by memory once the candidate nodes have answered; `t` and `T` override them, `c`
cycles how many run at once."""

from __future__ import annotations

import asyncio
from itertools import groupby
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header

from whimbrel.app.changes import ConsoleStateChanged
from whimbrel.app.measuring import measure_path, sample_dirty
from whimbrel.app.planning import console_request, container_size
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.app.screens.migrate import confirm_evacuation
from whimbrel.backends import costs
from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.evacuation import (
    MAX_CONCURRENCY,
    Destination,
    EvacuationPlan,
    Leaving,
    Placement,
    Route,
    Stay,
    place,
    plan_evacuation,
)
from whimbrel.backends.evacuation.plan import MEMORY_HEADROOM
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.units import format_duration
from whimbrel.widgets.charts import on_view
from whimbrel.widgets.footer import FoldingFooter
from whimbrel.widgets.steady_static import SteadyStatic

DIRTY_SAMPLES = 3
CONCURRENT_SAMPLERS = 4

COLUMNS = (
    ("name", "CONTAINER"),
    ("from", "FROM"),
    ("to", "TO"),
    ("mode", "MODE"),
    ("rounds", "ROUNDS"),
    ("downtime", "DOWNTIME"),
    ("time", "TIME"),
    ("start", "STARTS"),
)

Pair = tuple[str, str]

# Leaving, routes, targets, stays, concurrency, template: all the planner reads, comparable.
PlanInputs = tuple[
    tuple[Leaving, ...],
    tuple[tuple[Pair, Route], ...],
    tuple[tuple[str, str], ...],
    tuple[Stay, ...],
    int | None,
    MigrationRequest,
]


def _looks(value: Text | str) -> object:
    """What a cell shows, comparable: a Text's equality leaves its own style out."""
    return (value.plain, str(value.style), value.spans) if isinstance(value, Text) else value


class EvacuateScreen(ConsoleScreen, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="evacuate.back"),
        Binding("t", "next_target", "Target", id="evacuate.target"),
        Binding("T", "same_target", "All to this target", id="evacuate.same_target"),
        Binding("c", "concurrency", "At once", id="evacuate.concurrency"),
        Binding("m", "start", "Migrate all", id="evacuate.start"),
    ]

    def __init__(self, refs: list[str]) -> None:
        super().__init__()
        self.refs = refs
        self.targets: dict[str, str] = {}  # container ref -> node: placed by memory, or chosen
        self.stays: dict[str, str] = {}  # container ref -> why no target has room for it
        self.chosen = False  # the operator changed a target: the placement is theirs
        self.concurrency: int | None = None  # None: the planner's choice
        self.plan: EvacuationPlan | None = None  # None until every placed container is measured
        self._planned_from: PlanInputs | None = None
        self._measuring_paths = False
        self._drawn: dict[str, dict[str, object]] = {}  # ref -> column -> what its cell shows

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", id="evacuate-table")
        yield SteadyStatic(id="evacuate-total")
        # At 80 columns, T folds away (it stays bound, and in `?`) so that Quit and Help show.
        yield FoldingFooter(("same_target",))

    def _containers(self) -> list[ContainerInfo]:
        observed = self.console.observed
        assert observed is not None
        return [c for ref in self.refs if (c := observed.container(ref)) is not None]

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = f"Evacuate {len(self.refs)} containers, several at once"
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        for c in self._containers():
            table.add_row(*([""] * len(COLUMNS)), key=c.ref)
        self.console.pause_dirty_sampling()
        table.focus()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        self._show()

    def on_screen_suspend(self) -> None:
        self.workers.cancel_group(self, "evacuate-dirty")
        self.workers.cancel_group(self, "evacuate-paths")
        self._measuring_paths = False

    def on_screen_resume(self) -> None:
        # Also when the screen is first shown: what is measured already is not again.
        self._sample()
        self._measure_paths()
        self._show()

    # --- measuring ---------------------------------------------------------------------------

    @work(exclusive=True, group="evacuate-dirty")
    async def _sample(self) -> None:
        console, backend, observed = self.console, self.console.backend, self.console.observed
        assert backend is not None and observed is not None
        gate = asyncio.Semaphore(CONCURRENT_SAMPLERS)

        async def sample(c: ContainerInfo) -> None:
            if len(observed.dirty.get(c.ref, ())) < DIRTY_SAMPLES:
                async with gate:  # a failure is shown in its row; the others go on
                    await sample_dirty(backend, c, console.post_message, DIRTY_SAMPLES)

        await asyncio.gather(*(sample(c) for c in self._containers()))

    def _pairs(self) -> list[Pair]:
        """The paths the targets take, each once."""
        return sorted({(c.node, t) for c in self._containers() if (t := self.targets.get(c.ref))})

    def _measure_paths(self) -> None:
        """Measure the paths not measured yet; a target chosen meanwhile is taken up by the
        worker already at it."""
        if not self._measuring_paths:
            self._measuring_paths = True
            self._paths()

    @work(group="evacuate-paths")
    async def _paths(self) -> None:
        # One path at a time: throughput probes of several paths would share the WAN.
        console, backend, observed = self.console, self.console.backend, self.console.observed
        assert backend is not None and observed is not None
        tried: set[Pair] = set()  # a path that failed shows its error; not again until resumed
        try:
            while pair := next(
                (p for p in self._pairs() if p not in observed.throughput and p not in tried),
                None,
            ):
                tried.add(pair)
                await measure_path(backend, observed, *pair, console.post_message)
        finally:
            self._measuring_paths = False

    # --- planning ----------------------------------------------------------------------------

    def _place(self) -> None:
        """Targets by memory for the containers without one, once their sizes are known and
        every node they could go to has answered: per source cluster (each goes to another
        cluster), the memory each placement takes counted against the next."""
        observed = self.console.observed
        assert observed is not None
        waiting = [
            c for c in self._containers() if c.ref not in self.targets and c.ref not in self.stays
        ]
        sizes = {c.ref: container_size(c, observed.dirty.get(c.ref, ())) for c in waiting}
        candidates = {n for c in waiting for n in observed.targets_for(c)}
        if not waiting or any(observed.nodes.get(n) is None for n in candidates):
            return
        if any(size is None for size in sizes.values()):
            return
        free: dict[str, float | None] = {
            n: observed.destination(n).memory_available for n in candidates
        }

        def take(node: str, size: float) -> None:
            # In place()'s terms: it keeps MEMORY_HEADROOM of what is available free.
            left = free.get(node)
            if left is not None:
                free[node] = left - size / (1 - MEMORY_HEADROOM)

        for c in self._containers():
            size = container_size(c, observed.dirty.get(c.ref, ()))
            if c.ref in self.targets and size is not None:
                take(self.targets[c.ref], size)
        for _, group in groupby(sorted(waiting, key=lambda c: c.cluster), lambda c: c.cluster):
            members = list(group)
            destinations = [
                Destination(n, free[n])
                for n in observed.targets_for(members[0])
                if observed.reachable(n)
            ]
            # place() weighs sizes only: the dirty rates need not be in yet.
            placement = place(
                [Leaving(c.ref, c.node, sizes[c.ref] or 0.0, 0.0) for c in members], destinations
            )
            for ref, node in placement.targets.items():
                self.targets[ref] = node
                take(node, sizes[ref] or 0.0)
            self.stays.update({s.ref: s.reason for s in placement.stays})
        self._measure_paths()

    def _failures(self) -> dict[str, str]:
        """Why a container or its path could not be measured, by container ref."""
        observed = self.console.observed
        assert observed is not None
        failed = {}
        for c in self._containers():
            target = self.targets.get(c.ref)
            error = observed.dirty_errors.get(c.ref) or (
                observed.throughput_errors.get((c.node, target)) if target else None
            )
            if error:
                failed[c.ref] = error
        return failed

    def _template(self) -> MigrationRequest:
        return console_request(self.console.downtime_target_s, self.console.settings.lazy_restore)

    def _replan(self) -> None:
        """The plan of every placed container that could be measured, once all of them are;
        the planner runs again only when what it plans from changed."""
        inputs = self._plan_inputs()
        if inputs is None:
            self.plan, self._planned_from = None, None
        elif inputs != self._planned_from:
            leaving, routes, targets, stays, concurrency, template = inputs
            self.plan = plan_evacuation(
                leaving,
                Placement(dict(targets), stays),
                dict(routes),
                template,
                costs.DEFAULT_COSTS,  # looked up at each plan: tests swap the costs
                concurrency,
            )
            self._planned_from = inputs

    def _plan_inputs(self) -> PlanInputs | None:
        """What the planner needs, or None while a placed container or its path is being
        measured (or nothing is placed yet)."""
        observed = self.console.observed
        assert observed is not None
        if not self.targets and not self.stays:
            return None
        failed = self._failures()
        leaving: list[Leaving] = []
        routes: dict[Pair, Route] = {}
        for c in self._containers():
            if c.ref not in self.targets or c.ref in failed:
                continue
            pair = (c.node, self.targets[c.ref])
            left, route = observed.leaving(c), observed.route(pair)
            if left is None or route is None:
                return None
            leaving.append(left)
            routes[pair] = route
        return (
            tuple(leaving),
            tuple(sorted(routes.items())),
            tuple(sorted((r, t) for r, t in self.targets.items() if r not in failed)),
            tuple(Stay(ref, why) for ref, why in self.stays.items()),
            self.concurrency,
            self._template(),
        )

    # --- drawing -----------------------------------------------------------------------------

    def _show(self) -> None:
        if not on_view(self):
            return
        self._place()
        self._replan()
        colours = colours_of(self.app)
        table = self.query_one(DataTable)
        failed = self._failures()
        moves = {m.ref: m for m in self.plan.moves} if self.plan else {}
        for c in self._containers():
            move = moves.get(c.ref)
            if move is not None:
                meets = move.plan.meets_target
                cells: list[Text | str] = [
                    Text(move.mode, style=colours.get("accent", "")),
                    str(move.plan.rounds),
                    Text(
                        format_duration(move.plan.downtime_s),
                        style="" if meets else colours.get("warning", ""),
                    ),
                    format_duration(move.duration_s),
                    f"+{move.start_s:.1f} s",
                ]
            elif c.ref in failed or c.ref in self.stays:
                # The reason goes below the table: in a cell it would widen the column and
                # push every row's numbers off an 80-column terminal (this note is as wide as
                # "stop-and-copy").
                note, style = ("failed", "error") if c.ref in failed else ("stays", "warning")
                cells = [Text(f"{note}, below", style=colours.get(style, ""))]
                cells += [""] * 4
            else:
                cells = [Text("measuring…", style="italic dim"), *[""] * 4]
            row = [Text(c.name, style="bold"), c.node, self.targets.get(c.ref, "-"), *cells]
            # Every node's answer redraws the screen (four a second at 20 nodes); a cell
            # updated makes the table draw all its cells again, so only changed ones are.
            drawn = self._drawn.setdefault(c.ref, {})
            for (key, _), value in zip(COLUMNS, row, strict=True):
                if drawn.get(key) != (seen := _looks(value)):
                    drawn[key] = seen
                    table.update_cell(c.ref, key, value, update_width=True)
        subtitle = "targets as you chose them" if self.chosen else "targets by memory left"
        if table.border_subtitle != subtitle:  # setting it repaints the whole table
            table.border_subtitle = subtitle
        self.query_one("#evacuate-total", SteadyStatic).show(self._total(failed))

    def _total(self, failed: dict[str, str]) -> Text:
        colours = colours_of(self.app)
        plan, count = self.plan, len(self._containers())
        total = Text()
        if plan is not None and plan.moves:
            how = "the planner's choice" if self.concurrency is None else "yours"
            meet = sum(1 for m in plan.moves if m.plan.meets_target)
            total.append(f"{plan.concurrency} at once", style="bold")
            total.append(f" ({how}; c changes it): ")
            total.append(format_duration(plan.total_time_s), style="bold")
            total.append(
                f" in all, the link shared; one after another "
                f"{format_duration(plan.one_by_one_s)}. Longest downtime "
                f"{format_duration(max(m.plan.downtime_s for m in plan.moves))}; {meet} of "
                f"{len(plan.moves)} meet the {format_duration(self.console.downtime_target_s)} "
                "target."
            )
        elif plan is not None:
            total.append("Nothing can move.", style=colours.get("warning", ""))
        elif not self.targets and not self.stays:
            total.append("Waiting for the nodes to say how much memory they have…", style="dim")
        else:
            total.append("Measuring the containers and their paths…", style="dim")
        for ref, why in self.stays.items():
            total.append(f"\n{ref} stays: ", style="bold")
            total.append(why, style=colours.get("warning", ""))
        if failed:
            total.append(
                f"\n{len(failed)} of {count} could not be measured:",
                style=colours.get("error", ""),
            )
        for ref, error in failed.items():
            total.append(f"\n{ref}: ", style="bold")
            total.append(error, style=colours.get("error", ""))
        return total

    # --- actions -----------------------------------------------------------------------------

    def _row_ref(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def _retarget(self, refs: list[str], target: str) -> None:
        for ref in refs:
            self.targets[ref] = target
            self.stays.pop(ref, None)
        self.chosen = True
        self._show()
        self._measure_paths()

    def action_next_target(self) -> None:
        observed, ref = self.console.observed, self._row_ref()
        container = observed.container(ref) if observed and ref else None
        if observed is None or container is None:
            return
        targets = observed.targets_for(container)
        if targets:
            current = self.targets.get(container.ref)
            index = targets.index(current) if current in targets else -1
            self._retarget([container.ref], targets[(index + 1) % len(targets)])

    def action_same_target(self) -> None:
        observed, ref = self.console.observed, self._row_ref()
        target = self.targets.get(ref) if ref else None
        if observed is None or target is None:
            return
        self._retarget(
            [c.ref for c in self._containers() if target in observed.targets_for(c)], target
        )

    def action_concurrency(self) -> None:
        """auto, 1, 2, ... as many as move (more at once than that changes nothing), auto."""
        most = min(MAX_CONCURRENCY, max(1, len(self.targets)))
        current = self.concurrency
        self.concurrency = 1 if current is None else None if current >= most else current + 1
        self._show()

    def action_back(self) -> None:
        self.app.pop_screen()
        self.console.resume_monitors()

    def action_start(self) -> None:
        if self.plan is None:
            self.notify("still measuring: the plan is not ready yet", severity="warning")
        elif not self.plan.moves:
            self.notify("nothing can move", severity="warning")
        else:
            confirm_evacuation(self.console, self.plan, self._template())
