"""The main screen: clusters and nodes, every container, and live charts of the selection."""

from __future__ import annotations

import time
from typing import ClassVar, cast

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input

from whimbrel.app.changes import (
    DirtyChanged,
    InventoryChanged,
    ReadinessChanged,
    ReadOnlyChanged,
    RttChanged,
    SelectionChanged,
)
from whimbrel.app.preconditions import read_only_refusal
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.app.screens.evacuate import EvacuateScreen
from whimbrel.app.screens.history import HistoryScreen
from whimbrel.app.screens.live_charts import show_dirty, show_rtt
from whimbrel.app.screens.migrate import confirm_migration
from whimbrel.app.screens.preview import PreviewScreen
from whimbrel.app.screens.readiness import ReadinessScreen
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.widgets.charts import DirtyChart, RttChart, on_view
from whimbrel.widgets.container_table import ContainerRow, ContainerTable
from whimbrel.widgets.footer import FoldingFooter
from whimbrel.widgets.node_list import ClusterStatus, NodeList, NodeStatus

# Keys the footer leaves out below 100 columns, so that Help and Quit show at 80: sorting and
# the nodes say themselves in the table's border, refresh runs on its own, target and history
# are a step away (the preview, the palette); `?` lists them all.
FOLD_WHEN_NARROW = ("cycle_sort", "refresh", "next_target", "history", "nodes")

# Once every node has answered, the table takes their answers in one sync at most this often:
# whatever cell changed, DataTable renders every visible cell again (20 nodes, 200 containers:
# 5.6% of a core idle at 1 s, 4.8% at 2 s). A container this console moved leaves its source's
# row at once (Observations.moved), whichever node answers first.
TABLE_EVERY_S = 2.0


class MainScreen(ConsoleScreen, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="main.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="main.clear"),
        Binding("r", "refresh", "Refresh", id="main.refresh"),
        Binding("space", "mark", "Mark", id="main.mark"),
        Binding("p", "preview", "Preview", id="main.preview"),
        Binding("t", "next_target", "Target", id="main.target"),
        Binding("m", "migrate", "Migrate", id="main.migrate"),
        Binding("e", "evacuate", "Evacuate", id="main.evacuate"),
        Binding("h", "history", "History", id="main.history"),
        Binding("n", "nodes", "Nodes", id="main.nodes"),
        # Out of the footer: at 120 columns it is full to `? Help`. The cluster panel's border
        # names the key, `?` lists it.
        Binding("d", "doctor", "Node readiness", show=False, id="main.doctor"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()
        self._rates_shown: set[str] = set()
        self._table_due = False
        self._table_drawn_at = 0.0
        self._drawn_whole = False  # every node's answer in the table
        self._titles: tuple[str, str] | None = None  # the table's border title and subtitle

    def compose(self) -> ComposeResult:
        colours = lambda: colours_of(self.app)  # noqa: E731 - read at each draw: themes change
        yield Header()
        with Horizontal(id="body"):
            yield NodeList(colours, id="nodes")
            with Vertical(id="main"):
                yield Input(placeholder="filter: words that must all appear", id="filter")
                yield ContainerTable(colours, id="containers")
                with Horizontal(id="charts"):
                    yield RttChart(id="rtt")
                    yield DirtyChart(id="dirty")
        yield FoldingFooter(FOLD_WHEN_NARROW)

    def on_mount(self) -> None:
        nodes = self.query_one("#nodes", NodeList)
        nodes.border_title, nodes.border_subtitle = "Clusters", "d: readiness"
        self.query_one("#filter", Input).display = False
        self.query_one(ContainerTable).focus()
        self._redraw()

    def on_screen_resume(self) -> None:
        self._redraw()

    # Off view, a change waits: the screen redraws in full on resume.

    @on(InventoryChanged)
    @on(ReadOnlyChanged)
    def _inventory_changed(self) -> None:
        # Each node answers on its own: with 20 nodes, a table synced at every answer
        # re-rendered its rows 4 times a second (Textual redraws every visible cell after
        # any change). Once every node has answered, their answers go in by TABLE_EVERY_S.
        observed = self.console.observed
        if not on_view(self) or self._table_due or observed is None:
            return
        wait = self._table_drawn_at + TABLE_EVERY_S - time.monotonic()
        if wait <= 0 or not self._drawn_whole:  # the launch's answers show as they come
            self._draw_inventory()
        else:
            self._table_due = True
            self.set_timer(wait, self._draw_inventory)

    def _draw_inventory(self) -> None:
        self._table_due = False
        if on_view(self):
            self._table_drawn_at = time.monotonic()
            self._drawn_whole = self.console.observed is not None and (
                self.console.observed.all_answered
            )
            self._show_nodes()
            self._show_table()

    @on(DirtyChanged)
    def _dirty_changed(self) -> None:
        if not on_view(self):
            return
        # A container's first rate shows at once; later ones with the next inventory round:
        # redrawing the whole table every second for one cell costs more than the chart does.
        if self.console.selected not in self._rates_shown:
            self._show_table()
        self._show_dirty()

    @on(ReadinessChanged)
    def _readiness_changed(self) -> None:
        if on_view(self):
            self._show_nodes()
            self._show_titles()  # a narrow screen's title names the unready nodes

    @on(RttChanged)
    def _rtt_changed(self) -> None:
        if on_view(self):
            self._show_rtt()

    @on(SelectionChanged)
    def _selection_changed(self) -> None:
        if on_view(self):
            self._show_rtt()
            self._show_dirty()

    def _redraw(self) -> None:
        self._show_nodes()
        self._show_table()
        self._show_rtt()
        self._show_dirty()
        for chart in self.query("RttChart, DirtyChart"):
            cast(RttChart, chart).catch_up()

    # --- drawing -----------------------------------------------------------------------------

    def _show_nodes(self) -> None:
        observed = self.console.observed
        assert observed is not None
        clusters = []
        for name, cluster in observed.config.clusters.items():
            nodes = []
            for node in observed.config.nodes_of(name):
                inv = observed.nodes.get(node.name)
                report = observed.readiness.get(node.name)
                nodes.append(
                    NodeStatus(
                        node.name,
                        name,
                        None if inv is None else inv.reachable,
                        len(inv.containers) if inv else 0,
                        inv.error if inv else None,
                        inv.elapsed_s if inv else None,
                        tuple(c.name for c in report.failed) if report else (),
                        tuple(c.name for c in report.warnings) if report else (),
                    )
                )
            clusters.append(ClusterStatus(name, cluster.read_only, tuple(nodes)))
        self.query_one(NodeList).show(clusters)

    def _show_table(self) -> None:
        observed = self.console.observed
        assert observed is not None
        table = self.query_one(ContainerTable)
        containers = observed.containers()
        self.marked &= {c.ref for c in containers}
        self._rates_shown = {c.ref for c in containers if c.ref in observed.dirty}
        table.show(
            [
                ContainerRow(
                    ref=c.ref,
                    name=c.name,
                    node=c.node,
                    cluster=c.cluster,
                    state=c.state,
                    image=c.image,
                    memory_bytes=c.memory_bytes,
                    dirty_rate=observed.dirty_rate(c.ref),
                    marked=c.ref in self.marked,
                    busy=observed.busy.get(c.ref),
                )
                for c in containers
            ]
        )
        self._show_titles()
        follow = self.console.follow
        if follow:
            moved = observed.find(follow)
            if moved is not None and table.move_to(moved.ref):
                self.console.follow = None
        if table.current_ref != self.console.selected:
            self.console.select(table.current_ref)
        if observed.all_answered:
            self.console.first_table_shown()

    def _show_titles(self) -> None:
        observed = self.console.observed
        assert observed is not None
        table = self.query_one(ContainerTable)
        shown, total = len(table.visible_refs), len(observed.containers())
        answered = [n for n in observed.nodes.values() if n is not None]
        title = f"Containers  {total}"
        if shown != total:
            title = f"Containers  {shown} of {total} (filtered)"
        if len(answered) < len(observed.nodes):
            title += f"  ·  {len(answered)}/{len(observed.nodes)} nodes answered"
        subtitle = f"sorted by {table.sort_column}" + (" ↓" if table.sort_reverse else "")
        if self.has_class("-narrow"):
            # The cluster panel is folded away: the title says what it would (a node down
            # must not go unseen at 80 columns) and the subtitle how to open it.
            up = sum(1 for n in answered if n.reachable)
            title += f"  ·  {up}/{len(observed.nodes)} nodes up"
            down = [n.node for n in answered if not n.reachable]
            if down:
                title += f", {', '.join(down)} down"
            reports = observed.readiness
            unready = [
                n.node
                for n in answered
                if n.reachable and n.node in reports and not reports[n.node].ready
            ]
            if unready:
                title += f", {', '.join(unready)} not ready"
            subtitle = f"n: nodes  ·  {subtitle}"
        if self.marked:
            title += f"  ·  {len(self.marked)} marked"
        # Setting a border title repaints the whole table, even to the same words.
        if (title, subtitle) != self._titles:
            self._titles = title, subtitle
            table.border_title, table.border_subtitle = title, subtitle

    def on_resize(self) -> None:
        # The breakpoint classes (-narrow) have just been set: the titles depend on them.
        if self.is_mounted and self.console.observed is not None:
            self._show_titles()

    def _show_rtt(self) -> None:
        show_rtt(self.console, self.query_one(RttChart))

    def _show_dirty(self) -> None:
        show_dirty(self.console, self.query_one(DirtyChart))

    # --- events ------------------------------------------------------------------------------

    @on(ContainerTable.SortChanged)
    def _sorted(self) -> None:
        self._show_titles()

    @on(ContainerTable.CurrentChanged)
    def _current_changed(self, event: ContainerTable.CurrentChanged) -> None:
        self.console.select(event.ref)

    @on(DataTable.RowSelected, "#containers")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_preview()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(ContainerTable).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one(ContainerTable).focus()

    # --- actions -----------------------------------------------------------------------------

    def _current(self) -> ContainerInfo | None:
        observed = self.console.observed
        ref = self.query_one(ContainerTable).current_ref
        return observed.container(ref) if observed and ref else None

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(ContainerTable).focus()

    def action_nodes(self) -> None:
        """Go to the cluster panel, or back to the table. On a narrow terminal the panel is
        folded away (themes/console.tcss) and opens only while it has the focus: marking or
        evacuating a whole node must work at 80 columns too."""
        if self.query_one(NodeList).has_focus:
            self.query_one(ContainerTable).focus()
        else:
            self.query_one(NodeList).focus()  # a folded widget still takes the focus

    # `-nodes-open` follows the focus, not the key: the panel focused on a wide terminal stays
    # open when the terminal narrows, and any way out of it (n, tab, esc) folds it.

    @on(events.DescendantFocus)
    def _nodes_entered(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, NodeList):
            self.add_class("-nodes-open")

    @on(events.DescendantBlur)
    def _nodes_left(self, event: events.DescendantBlur) -> None:
        if isinstance(event.widget, NodeList):
            self.remove_class("-nodes-open")

    def action_doctor(self) -> None:
        """Every readiness check of the highlighted node, or of the node of the container
        under the cursor."""
        nodes = self.query_one(NodeList)
        if nodes.has_focus:
            node = nodes.highlighted_node
        else:
            container = self._current()
            node = container.node if container else None
        if node is None:
            self.notify("pick a container, or a node (n)", severity="warning")
            return
        self.app.push_screen(ReadinessScreen(node))

    def action_refresh(self) -> None:
        self.console.refresh_inventory()
        self.notify("refreshing every node", timeout=2)

    def action_mark(self) -> None:
        observed = self.console.observed
        assert observed is not None
        nodes = self.query_one(NodeList)
        if nodes.has_focus and nodes.highlighted_node:
            refs = {c.ref for c in observed.containers() if c.node == nodes.highlighted_node}
            # Marking a node marks all of it; again unmarks all of it.
            self.marked = self.marked - refs if refs <= self.marked else self.marked | refs
        else:
            ref = self.query_one(ContainerTable).current_ref
            if ref is None:
                return
            self.marked ^= {ref}
            table = self.query_one(ContainerTable)
            table.action_cursor_down()
        self._show_table()

    def action_preview(self) -> None:
        container = self._current()
        if container is not None:
            self.app.push_screen(PreviewScreen(container.ref))

    def action_probe(self) -> None:
        """Measure the selected path again: RTT and throughput (the palette's "Probe")."""
        observed, container, target = (
            self.console.observed,
            self.console.selected_container(),
            self.console.target,
        )
        if observed is None or container is None or target is None:
            self.notify("select a container first", severity="warning")
            return
        observed.throughput.pop((container.node, target), None)
        self.console.measure_throughput(container.node, target)
        self.notify(f"measuring {container.node} → {target}: RTT and throughput", timeout=3)

    def action_next_target(self) -> None:
        observed, container = self.console.observed, self.console.selected_container()
        if observed is None or container is None:
            return
        targets = observed.targets_for(container)
        if not targets:
            return
        current = self.console.target
        index = targets.index(current) if current in targets else -1
        self.console.set_target(targets[(index + 1) % len(targets)])

    def action_migrate(self) -> None:
        container = self._current()
        if container is None:
            return
        confirm_migration(self.console, container, self.console.target)

    def action_evacuate(self) -> None:
        observed = self.console.observed
        assert observed is not None
        nodes = self.query_one(NodeList)
        if nodes.has_focus and nodes.highlighted_node:
            chosen = [c for c in observed.containers() if c.node == nodes.highlighted_node]
        elif self.marked:
            chosen = [c for c in observed.containers() if c.ref in self.marked]
        else:
            current = self._current()
            chosen = [current] if current else []
        # In the order the table shows them: the order the operator sees is the order they go.
        shown = {ref: i for i, ref in enumerate(self.query_one(ContainerTable).visible_refs)}
        chosen = sorted(
            (c for c in chosen if c.running), key=lambda c: shown.get(c.ref, len(shown))
        )
        if not chosen:
            self.notify(
                "nothing to evacuate: mark running containers (space) or pick a node",
                severity="warning",
            )
            return
        if reason := read_only_refusal(self.console.read_only):
            self.notify(reason, severity="error")
            return
        self.app.push_screen(EvacuateScreen([c.ref for c in chosen]))

    def action_history(self) -> None:
        self.app.push_screen(HistoryScreen())
