"""`?`: the keys of the screen underneath (as remapped by `[console] keys`), with their ids."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

ABOUT = (
    "whimbrel measures the path and the container before anything moves, predicts with a "
    "latency-aware pre-copy model whether iterating pays off, then migrates for real and "
    "shows every round, predicted against actual."
)
TIPS = (
    ("/", "filter: every word must appear in name, node, cluster, state or image"),
    ("space", "mark a container; on a node (n: the node list), mark all of it"),
    ("enter, p", "plan preview: pick the target, type a downtime target, watch the plan"),
    ("m", "migrate, after a confirmation that names container, source, target, prediction"),
    (":, ctrl+p", "commands: migrate, evacuate, probe, theme, refresh, read-only"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self._content())
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Help"
        self.query_one("#help").border_subtitle = "esc closes"

    def _content(self) -> Table:
        keys = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
        keys.add_column("key", no_wrap=True)
        keys.add_column("does")
        keys.add_column(Text("binding id (remap in [console] keys)"), style="dim")
        seen = set()
        for active in self.under.active_bindings.values():
            binding = active.binding
            if not binding.description or not binding.id or binding.id in seen:
                continue
            seen.add(binding.id)
            keys.add_row(self.app.get_key_display(binding), binding.description, binding.id or "")
        outer = Table.grid(padding=(1, 0))
        outer.add_column()
        outer.add_row(Text(ABOUT))
        outer.add_row(keys)
        tips = Table(box=None, padding=(0, 2), show_header=False)
        tips.add_column(no_wrap=True, style="bold")
        tips.add_column()
        for key, text in TIPS:
            tips.add_row(key, text)
        outer.add_row(tips)
        return outer

    def action_close(self) -> None:
        self.dismiss(None)
