"""The command palette's whimbrel commands (`:` or ctrl+p): migrate, evacuate, probe, theme,
refresh, read-only, history, node readiness. Screen commands run on the screen the palette was
opened from."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from whimbrel.themes import THEMES

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp

Command = tuple[str, str, Callable[[], object]]


# Actions of the screen the palette was opened from, offered when that screen has them.
SCREEN_COMMANDS = (
    ("migrate", "Migrate", "migrate the selected container to its target"),
    ("evacuate", "Evacuate", "migrate the marked containers, several at once"),
    ("preview", "Plan preview", "the model's plan for the selected container"),
    ("probe", "Probe", "measure the selected path again: RTT and throughput"),
    ("history", "History", "past migrations, predicted against measured"),
    ("doctor", "Node readiness", "every check of the node's doctor, with remedies"),
)


class WhimbrelCommands(Provider):
    def _commands(self) -> list[Command]:
        app = cast("WhimbrelApp", self.app)
        commands = self._cluster_commands(app) if app.backend is not None else []
        for name in THEMES:
            commands.append(
                (
                    f"Theme: {name}",
                    "switch theme (remembered)",
                    partial(setattr, app, "theme", name),
                )
            )
        return commands

    def _cluster_commands(self, app: WhimbrelApp) -> list[Command]:
        """What needs clusters: the screen's actions, refresh, settle, read-only."""
        commands: list[Command] = []
        for name, title, help_text in SCREEN_COMMANDS:
            action = getattr(self.screen, f"action_{name}", None)
            if callable(action):
                commands.append((title, help_text, action))
        commands.append(("Refresh", "ask every node for its containers now", app.refresh_inventory))
        commands.append(
            (
                "Settle unfinished migrations",
                "finish or undo what a whimbrel that died left pending",
                app.settle_unfinished,
            )
        )
        if app.read_only:
            commands.append(
                ("Read-only: off", "allow migrations again", partial(app.set_read_only, False))
            )
        else:
            commands.append(
                (
                    "Read-only: on",
                    "no migration can start from this console",
                    partial(app.set_read_only, True),
                )
            )
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
