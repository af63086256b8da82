"""Evacuate: several containers (the marked ones, or a whole node) to chosen targets, one
after another, with a combined prediction first.

Opening it measures what the plans need that is not known yet: each container's dirty rate
(a few samples; the main screen's sampler is paused meanwhile, two samplers would hide each
other's pages) and the RTT and throughput of each distinct path, one path at a time."""

from __future__ import annotations

import asyncio
from typing import ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from whimbrel.app.changes import ConsoleStateChanged
from whimbrel.app.measuring import measure_path, sample_dirty
from whimbrel.app.planning import plan_for
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.app.screens.migrate import confirm_migrations
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan
from whimbrel.backends.units import format_duration, format_size
from whimbrel.widgets.charts import on_view

DIRTY_SAMPLES = 3
CONCURRENT_SAMPLERS = 4

COLUMNS = (
    ("name", "CONTAINER"),
    ("from", "FROM"),
    ("to", "TO"),
    ("verdict", "VERDICT"),
    ("downtime", "DOWNTIME"),
    ("total", "TOTAL"),
    ("bytes", "BYTES"),
)


class EvacuateScreen(ConsoleScreen, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="evacuate.back"),
        Binding("t", "next_target", "Target", id="evacuate.target"),
        Binding("T", "same_target", "All to this target", id="evacuate.same_target"),
        Binding("m", "start", "Migrate all", id="evacuate.start"),
    ]

    def __init__(self, refs: list[str]) -> None:
        super().__init__()
        self.refs = refs
        self.targets: dict[str, str | None] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", id="evacuate-table")
        yield Static(id="evacuate-total")
        yield Footer()

    def _containers(self) -> list[ContainerInfo]:
        observed = self.console.observed
        assert observed is not None
        return [c for ref in self.refs if (c := observed.container(ref)) is not None]

    def on_mount(self) -> None:
        observed = self.console.observed
        assert observed is not None
        table = self.query_one(DataTable)
        table.border_title = f"Evacuate {len(self.refs)} containers, one after another"
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        for c in self._containers():
            self.targets[c.ref] = observed.default_target(c)
            table.add_row(*([""] * len(COLUMNS)), key=c.ref)
        self.console.pause_dirty_sampling()
        self._show()
        self._measure()
        table.focus()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        self._show()

    def on_screen_suspend(self) -> None:
        self.workers.cancel_group(self, "evacuate-measure")

    def on_screen_resume(self) -> None:
        self._show()

    # --- measuring ---------------------------------------------------------------------------

    @work(exclusive=True, group="evacuate-measure")
    async def _measure(self) -> None:
        console, backend, observed = self.console, self.console.backend, self.console.observed
        assert backend is not None and observed is not None
        containers = self._containers()
        gate = asyncio.Semaphore(CONCURRENT_SAMPLERS)

        async def sample(c: ContainerInfo) -> None:
            if len(observed.dirty.get(c.ref, ())) < DIRTY_SAMPLES:
                async with gate:  # a failure is shown in its row; the others go on
                    await sample_dirty(backend, c, console.post_message, DIRTY_SAMPLES)

        async def paths() -> None:
            # One path at a time: throughput probes of several paths would share the WAN.
            for pair in sorted({(c.node, t) for c in containers if (t := self.targets[c.ref])}):
                if pair not in observed.throughput:
                    await measure_path(backend, observed, *pair, console.post_message)

        await asyncio.gather(paths(), *(sample(c) for c in containers))

    # --- drawing -----------------------------------------------------------------------------

    def _plans(self) -> dict[str, Plan | None]:
        observed = self.console.observed
        assert observed is not None
        return {
            c.ref: plan_for(
                observed.measurements(c, t),
                self.console.downtime_target_s,
                self.console.settings.lazy_restore,
            )
            if (t := self.targets.get(c.ref))
            else None
            for c in self._containers()
        }

    def _show(self) -> None:
        if not on_view(self):
            return
        observed = self.console.observed
        assert observed is not None
        colours = colours_of(self.app)
        table = self.query_one(DataTable)
        plans = self._plans()
        failed: dict[str, str] = {}  # container ref -> why it could not be measured
        for c in self._containers():
            target, plan = self.targets.get(c.ref), plans.get(c.ref)
            error = observed.dirty_errors.get(c.ref) or (
                observed.throughput_errors.get((c.node, target)) if target else None
            )
            if plan is not None:
                cells = [
                    Text(plan.verdict, style=colours.get("accent", "")),
                    format_duration(plan.downtime_s),
                    format_duration(plan.total_time_s),
                    format_size(plan.bytes_sent),
                ]
            elif error:
                # The reason goes below the table: in a cell it would widen the column and
                # push every row's numbers off an 80-column terminal.
                failed[c.ref] = error
                cells = [Text("failed: see below", style=colours.get("error", "")), "", "", ""]
            else:
                cells = [Text("measuring…", style="italic dim"), "", "", ""]
            row = [Text(c.name, style="bold"), c.node, target or "-", *cells]
            for (key, _), value in zip(COLUMNS, row, strict=True):
                table.update_cell(c.ref, key, value, update_width=True)
        known = [p for p in plans.values() if p is not None]
        total = Text()
        if len(known) == len(plans) and known:
            total.append("Combined: ", style="bold")
            total.append(
                f"{format_duration(sum(p.total_time_s for p in known))} in all, "
                f"{format_size(sum(p.bytes_sent for p in known))} sent, longest downtime "
                f"{format_duration(max(p.downtime_s for p in known))}; "
                f"{sum(1 for p in known if p.meets_target)} of {len(known)} meet the "
                f"{format_duration(self.console.downtime_target_s)} target."
            )
        elif len(known) + len(failed) == len(plans):
            total.append(
                f"{len(failed)} of {len(plans)} could not be measured:",
                style=colours.get("error", ""),
            )
        else:
            total.append(f"Measuring: {len(known)} of {len(plans)} plans ready…", style="dim")
        for ref, error in failed.items():
            total.append(f"\n{ref}: ", style="bold")
            total.append(error, style=colours.get("error", ""))
        self.query_one("#evacuate-total", Static).update(total)

    # --- actions -----------------------------------------------------------------------------

    def _row_ref(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def action_next_target(self) -> None:
        observed, ref = self.console.observed, self._row_ref()
        container = observed.container(ref) if observed and ref else None
        if observed is None or container is None or ref is None:
            return
        targets = observed.targets_for(container)
        if targets:
            current = self.targets.get(ref)
            index = targets.index(current) if current in targets else -1
            self.targets[ref] = targets[(index + 1) % len(targets)]
            self._show()
            self._measure()

    def action_same_target(self) -> None:
        observed, ref = self.console.observed, self._row_ref()
        if observed is None or ref is None or self.targets.get(ref) is None:
            return
        target = cast(str, self.targets[ref])
        for c in self._containers():
            if target in observed.targets_for(c):
                self.targets[c.ref] = target
        self._show()
        self._measure()

    def action_back(self) -> None:
        self.app.pop_screen()
        self.console.resume_monitors()

    def action_start(self) -> None:
        moves = [(c, self.targets.get(c.ref)) for c in self._containers()]
        confirm_migrations(self.console, moves)
