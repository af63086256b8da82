"""The confirmation before anything moves: which container, from where, to where, and what the
model predicts. Cancel has the focus; the prediction keeps updating while the modal is open."""

from __future__ import annotations

from collections.abc import Sequence
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
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.planning import plan_for
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan
from whimbrel.backends.units import format_duration, format_size

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp

Move = tuple[ContainerInfo, str | None]


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


def confirm_migrations(app: WhimbrelApp, moves: Sequence[Move]) -> None:
    """Refuse with the reason, or open the modal; migrate if the operator confirms."""
    observed = app.observed
    assert observed is not None
    for container, target in moves:
        reason = app.refusal(container, target)
        if reason:
            app.notify(f"{container.name}: {reason}", severity="error")
            return
        assert target is not None
        if (container.node, target) not in observed.throughput:
            app.measure_throughput(container.node, target)

    def started(orders: list[MigrationOrder] | None) -> None:
        if orders:
            app.start_migrations(orders)

    app.push_screen(MigrateModal(list(moves)), started)


class MigrateModal(ConsoleScreen, ModalScreen[list[MigrationOrder] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
        Binding("left,right", "switch", "Switch button", show=False, id="modal.switch"),
    ]

    def __init__(self, moves: list[Move]) -> None:
        super().__init__()
        self.moves = moves

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Migrate", id="go", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        many = len(self.moves) > 1
        self.query_one("#dialog").border_title = (
            f"Migrate {len(self.moves)} containers?"
            if many
            else f"Migrate {self.moves[0][0].name}?"
        )
        self.query_one("#cancel", Button).focus()
        self._show()

    @on(ConsoleStateChanged)
    def _state_changed(self) -> None:
        self._show()

    def _plans(self) -> list[Plan | None]:
        observed = self.console.observed
        assert observed is not None
        return [
            plan_for(
                observed.measurements(c, t),
                self.console.downtime_target_s,
                self.console.settings.lazy_restore,
            )
            if t
            else None
            for c, t in self.moves
        ]

    def _show(self) -> None:
        observed = self.console.observed
        assert observed is not None
        colours = colours_of(self.app)
        table = Table.grid(padding=(0, 1))
        table.add_column()
        plans = self._plans()
        for (container, target), plan in zip(self.moves, plans, strict=True):
            assert target is not None
            table.add_row(
                Text.assemble(
                    (container.name, f"bold {colours.get('accent', '')}"),
                    f"  from {container.node} ({container.cluster})  to ",
                    (target, "bold"),
                    f" ({observed.cluster_of(target)})",
                )
            )
            table.add_row(Text("  ").append_text(prediction_text(plan)))
        if len(self.moves) > 1 and all(plans):
            total = sum(p.total_time_s for p in plans if p)
            worst = max(p.downtime_s for p in plans if p)
            table.add_row(Text(""))
            table.add_row(
                Text(
                    f"one after another: {format_duration(total)} in all, longest downtime "
                    f"{format_duration(worst)}"
                )
            )
        table.add_row(Text(""))
        table.add_row(
            Text(
                "The source keeps running until the target serves; a failure before "
                "that rolls back.",
                style="dim",
            )
        )
        self.query_one("#dialog-body", Static).update(table)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_switch(self) -> None:
        self.focus_next(Button)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        orders = []
        for (container, target), plan in zip(self.moves, self._plans(), strict=True):
            assert target is not None
            orders.append(
                MigrationOrder(
                    container,
                    target,
                    self.console.downtime_target_s,
                    plan,
                    self.console.settings.lazy_restore,
                )
            )
        self.dismiss(orders)
