"""The confirmation before anything moves: which containers, from where, to where, and what the
model predicts. Cancel has the focus. A single migration's prediction keeps updating while the
modal is open; an evacuation's plan is the one the operator confirms, as shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from whimbrel.app.changes import ConsoleStateChanged
from whimbrel.app.engine_events import name_of
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.planning import plan_for
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.evacuation import EvacuationPlan
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan
from whimbrel.backends.units import format_duration, format_size

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp

FOOTNOTE = "The source keeps running until the target serves; a failure before that rolls back."


def prediction_text(plan: Plan | None) -> Text:
    if plan is None:
        return Text("measuring the path…", style="italic dim")
    rounds = (
        f"{plan.rounds} round{'s' if plan.rounds != 1 else ''} + final"
        if plan.rounds
        else "stop-and-copy"
    )
    return Text.assemble(
        (plan.verdict, "bold"),
        f", {rounds}; downtime ",
        (format_duration(plan.downtime_s), "bold"),
        f" ({'meets' if plan.meets_target else 'misses'} the "
        f"{format_duration(plan.inputs.downtime_target)} target), total ",
        format_duration(plan.total_time_s),
        ", ",
        format_size(plan.bytes_sent),
    )


def confirm_migration(app: WhimbrelApp, container: ContainerInfo, target: str | None) -> None:
    """Refuse with the reason, or open the modal; migrate if the operator confirms."""
    observed = app.observed
    assert observed is not None
    reason = app.refusal(container, target)
    if reason:
        app.notify(f"{container.name}: {reason}", severity="error")
        return
    assert target is not None
    if (container.node, target) not in observed.throughput:
        app.measure_throughput(container.node, target)

    def plan() -> Plan | None:  # from what is measured now: the modal shows it as it comes
        return plan_for(
            observed.measurements(container, target),
            app.downtime_target_s,
            app.settings.lazy_restore,
        )

    def body() -> Table:
        colours = colours_of(app)
        table = _grid()
        table.add_row(
            Text.assemble(
                (container.name, f"bold {colours.get('accent', '')}"),
                f"  from {container.node} ({container.cluster})  to ",
                (target, "bold"),
                f" ({observed.cluster_of(target)})",
            )
        )
        table.add_row(Text("  ").append_text(prediction_text(plan())))
        return table

    def confirmed(go: bool | None) -> None:
        if go:
            order = MigrationOrder(
                container, target, app.downtime_target_s, plan(), app.settings.lazy_restore
            )
            app.start_migration(order)

    app.push_screen(MigrateModal(f"Migrate {container.name}?", body), confirmed)


def confirm_evacuation(app: WhimbrelApp, plan: EvacuationPlan, template: MigrationRequest) -> None:
    """Refuse with the first move's reason, or open the modal on the plan; run it if the
    operator confirms."""
    observed = app.observed
    assert observed is not None
    for move in plan.moves:
        container = observed.container(move.ref)
        reason = (
            app.refusal(container, move.target)
            if container is not None
            else "no longer in the inventory"
        )
        if reason:
            app.notify(f"{name_of(move.ref)}: {reason}", severity="error")
            return

    def body() -> Table:
        colours = colours_of(app)
        table = _grid()
        for move in plan.moves:
            table.add_row(
                Text.assemble(
                    (name_of(move.ref), f"bold {colours.get('accent', '')}"),
                    f"  {move.src} → ",
                    (move.target, "bold"),
                    f"  {move.mode}, downtime ",
                    (format_duration(move.plan.downtime_s), "bold"),
                    f", starts +{move.start_s:.1f} s",
                )
            )
        table.add_row(Text(""))
        table.add_row(
            Text.assemble(
                f"{plan.concurrency} at once: ",
                (format_duration(plan.total_time_s), "bold"),
                f" in all (one after another: {format_duration(plan.one_by_one_s)})",
            )
        )
        if plan.stays:
            stays = ", ".join(name_of(s.ref) for s in plan.stays)
            table.add_row(Text(f"staying where they are: {stays}", style="dim"))
        return table

    def confirmed(go: bool | None) -> None:
        if go:
            app.start_evacuation(plan, template)

    count = len(plan.moves)
    title = f"Migrate {count} container{'s' if count != 1 else ''}, {plan.concurrency} at once?"
    app.push_screen(MigrateModal(title, body), confirmed)


def _grid() -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column()
    return table


class MigrateModal(ConsoleScreen, ModalScreen[bool]):
    """`body` draws what would move; it is asked again at each change of the console's state.
    Dismissed with True when the operator confirms."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
        Binding("left,right", "switch", "Switch button", show=False, id="modal.switch"),
    ]

    def __init__(self, title: str, body: Callable[[], Table]) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Migrate", id="go", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = self.title_text
        self.query_one("#cancel", Button).focus()
        self._show()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        self._show()

    def _show(self) -> None:
        table = self.body()
        table.add_row(Text(""))
        table.add_row(Text(FOOTNOTE, style="dim"))
        self.query_one("#dialog-body", Static).update(table)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_switch(self) -> None:
        self.focus_next(Button)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        self.dismiss(True)
