"""No config yet: say where the console looked and how to start."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

EXAMPLE = """\
[clusters.east]
[clusters.west]

[[nodes]]
name = "east-1"
cluster = "east"
address = "10.0.1.10"        # host[:port], as you reach it with ssh
ssh_user = "root"

[[nodes]]
name = "west-1"
cluster = "west"
address = "10.0.2.10"
"""


class WelcomeScreen(Screen[None]):
    def __init__(self, config_path: Path) -> None:
        super().__init__()
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="welcome"):
            yield Static(self._message(), id="welcome-text")
        yield Footer()

    def _message(self) -> Group:
        return Group(
            Text("No clusters configured yet.", style="bold"),
            Text(""),
            Text.assemble(
                "The console looked for its config at ",
                (str(self.config_path), "bold"),
                "  (--config or $WHIMBREL_CONFIG choose another).",
            ),
            Text(""),
            Text.assemble(
                "To try it on this machine: ",
                ("sudo whimbrel demo", "bold"),
                " brings up a local lab of two clusters and opens the console on it.",
            ),
            Text(""),
            Text(f"Or write {self.config_path} for your own nodes, for example:"),
            Text(""),
            Syntax(EXAMPLE, "toml", theme="ansi_dark", background_color="default"),
            Text("Then `whimbrel config check` tests it, and `whimbrel` opens the console."),
        )
