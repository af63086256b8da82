"""Plan preview: pick a target node in another cluster, see the model's verdict and its rounds;
the plan follows every keystroke of the downtime target and every new measurement."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalGroup, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from whimbrel.app.changes import (
    ConsoleStateChanged,
    DirtyChanged,
    InventoryChanged,
    RttChanged,
    SelectionChanged,
)
from whimbrel.app.planning import plan_for
from whimbrel.app.rounds import RoundRows
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.app.screens.live_charts import show_dirty, show_rtt
from whimbrel.app.screens.migrate import confirm_migration
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan
from whimbrel.backends.units import UnitError, format_duration, format_size, parse_duration
from whimbrel.widgets.charts import DirtyChart, RttChart, on_view
from whimbrel.widgets.plan_panel import PlanPanel, measured_line
from whimbrel.widgets.round_bars import RoundBars
from whimbrel.widgets.steady_static import SteadyStatic

REPLAN_AFTER_S = 0.5


class PreviewScreen(ConsoleScreen, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="preview.back"),
        Binding("m", "migrate", "Migrate", id="preview.migrate"),
        Binding("p", "probe", "Re-measure", id="preview.probe"),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.plan: Plan | None = None
        self._measured: set[tuple[str, str]] = set()
        self._replan_due = False
        self._described: ContainerInfo | None = None  # as the container panel shows it

    def compose(self) -> ComposeResult:
        colours = lambda: colours_of(self.app)  # noqa: E731 - read at each draw
        yield Header()
        # Wide, the side column stands left of the plan; narrow (themes/console.tcss), what the
        # operator sets and the container sit side by side above it. The plan, its rounds and
        # the charts scroll: at 80x24 they are taller than the screen.
        with Horizontal(id="preview-body"):
            with Vertical(id="preview-side"):
                with VerticalGroup(id="preview-choice"):
                    yield Input(
                        value=f"{self.console.downtime_target_s * 1000:g}ms",
                        placeholder="e.g. 300ms",
                        id="downtime",
                    )
                    yield Static("", id="downtime-error")
                    yield OptionList(id="targets")
                yield SteadyStatic("", id="container-info")
            with VerticalScroll(id="preview-main"):
                yield PlanPanel(colours, id="plan")
                yield RoundBars(colours, id="plan-rounds")
                with Horizontal(id="preview-charts"):
                    yield RttChart(id="preview-rtt")
                    yield DirtyChart(id="preview-dirty")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#targets").border_title = "Target node"
        self.query_one("#downtime").border_title = "Downtime target"
        self.query_one("#plan-rounds").border_title = "Per round (predicted)"
        self.query_one("#container-info").border_title = "Container"
        self.query_one("#downtime-error").display = False
        self.console.select(self.ref)
        self._fill_targets()
        self._measure_path()
        self._replan()
        self._show_container()
        self._show_charts()
        self.query_one("#targets").focus()

    def on_screen_resume(self) -> None:
        self._replan()
        self._show_charts()

    def _show_charts(self) -> None:
        show_rtt(self.console, self.query_one(RttChart))
        show_dirty(self.console, self.query_one(DirtyChart))

    def _show_container(self) -> None:
        container = self._described = self._container()
        info = self.query_one("#container-info", SteadyStatic)
        if container is None:
            info.show(Text("gone: moved or removed", style="dim"))
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_row("name", Text(container.name, style="bold"))
        grid.add_row("on", f"{container.node} ({container.cluster})")
        grid.add_row("image", container.image)
        grid.add_row("state", container.status or container.state)
        if container.memory_bytes is not None:
            grid.add_row("memory", format_size(container.memory_bytes))
        if container.mounts:
            grid.add_row("mounts", ", ".join(m.destination for m in container.mounts))
        info.show(grid)

    def _container(self) -> ContainerInfo | None:
        observed = self.console.observed
        return observed.container(self.ref) if observed else None

    def _fill_targets(self) -> None:
        observed, container = self.console.observed, self._container()
        targets = self.query_one("#targets", OptionList)
        if observed is None or container is None:
            return
        options = []
        for node in observed.targets_for(container):
            up = observed.reachable(node)
            rtt = observed.rtt_last.get((container.node, node))
            text = Text(node)
            text.append(f"  {observed.cluster_of(node)}", style="dim")
            if up is False:
                text.append("  not answering", style="dim italic")
            elif rtt is not None:
                text.append(f"  {format_duration(rtt)}", style="dim")
            options.append(Option(text, id=node))
        ids = [o.id for o in options]
        if ids == [o.id for o in targets.options]:
            # The same nodes: a new RTT rewrites one prompt, never the list (its rebuild
            # reflows the screen, once a second with the RTT chart live).
            for option, old in zip(options, targets.options, strict=True):
                if option.id and option.prompt != old.prompt:
                    targets.replace_option_prompt(option.id, option.prompt)
        else:
            highlighted = targets.highlighted
            targets.set_options(options)
            if highlighted is not None and options:
                targets.highlighted = min(highlighted, len(options) - 1)
        if self.console.target in ids and targets.highlighted != ids.index(self.console.target):
            targets.highlighted = ids.index(self.console.target)

    # Off view, a change waits: the screen catches up on resume. Textual runs the handlers of
    # a change's own class before its base's: the plan follows what they drew.

    @on(InventoryChanged)
    def _inventory_changed(self) -> None:
        if on_view(self):
            self._fill_targets()
            # Every node's answer is a change (four a second at 20 nodes): the panel is
            # rendered again only for one that changed what it describes.
            if self._container() != self._described:
                self._show_container()

    @on(RttChanged)
    def _rtt_changed(self) -> None:
        if on_view(self):
            self._fill_targets()
            show_rtt(self.console, self.query_one(RttChart))

    @on(DirtyChanged)
    def _dirty_changed(self) -> None:
        if on_view(self):
            show_dirty(self.console, self.query_one(DirtyChart))

    @on(SelectionChanged)
    def _selection_changed(self) -> None:
        if on_view(self):
            self._show_charts()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        # Samples come apart (the RTT's, the dirty rate's, each node's inventory): one replan
        # takes them all in, a moment later, rather than one each.
        if on_view(self) and not self._replan_due:
            self._replan_due = True
            self.set_timer(REPLAN_AFTER_S, self._due_replan)

    def _due_replan(self) -> None:
        self._replan_due = False
        if on_view(self):
            self._replan()

    def _measure_path(self, again: bool = False) -> None:
        observed, container, target = self.console.observed, self._container(), self.console.target
        if observed is None or container is None or target is None:
            return
        pair = (container.node, target)
        if again:
            observed.throughput.pop(pair, None)
        elif pair in self._measured or pair in observed.throughput:
            return
        self._measured.add(pair)
        self.console.measure_throughput(*pair)

    def _replan(self) -> None:
        observed, container, target = self.console.observed, self._container(), self.console.target
        panel = self.query_one(PlanPanel)
        bars = self.query_one(RoundBars)
        if observed is None or container is None:
            panel.show_plan(None, Text(f"{self.ref} is gone (moved or removed)"))
            return
        if target is None:
            panel.show_plan(None, Text("no node in another cluster"), ("a target",))
            return
        panel.border_title = f"Plan: {container.name} on {container.node} → {target}"
        measured = observed.measurements(container, target)
        self.plan = plan_for(
            measured, self.console.downtime_target_s, self.console.settings.lazy_restore
        )
        pair = (container.node, target)
        errors = (
            observed.rtt_errors.get(pair),
            observed.throughput_errors.get(pair),
            observed.dirty_errors.get(container.ref),
        )
        waiting = list(measured.missing) + [f"({e})" for e in errors if e]
        panel.show_plan(
            self.plan,
            measured_line(measured.size, measured.dirty_rate, measured.rtt, measured.bandwidth),
            waiting,
        )
        bars.show_rounds(RoundRows(self.plan).bars(), show_actual=False)

    @on(OptionList.OptionHighlighted, "#targets")
    def _target_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.console.target:
            self.console.set_target(event.option.id)
            self._measure_path()
            self._replan()

    @on(OptionList.OptionSelected, "#targets")
    def _target_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#downtime", Input).focus()

    @on(Input.Changed, "#downtime")
    def _downtime_changed(self, event: Input.Changed) -> None:
        error = self.query_one("#downtime-error", Static)
        try:
            seconds = parse_duration(event.value, "downtime target", allow_zero=False)
        except UnitError as exc:
            error.update(Text(str(exc), style=colours_of(self.app).get("error", "")))
            error.display = True
            return
        error.display = False
        self.console.downtime_target_s = seconds
        self._replan()

    @on(Input.Submitted, "#downtime")
    def _downtime_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#targets").focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_probe(self) -> None:
        self._measure_path(again=True)
        self._replan()
        self.notify("measuring the path again (RTT and throughput)", timeout=3)

    def action_migrate(self) -> None:
        container = self._container()
        if container is not None:
            confirm_migration(self.console, container, self.console.target)
