"""The console's screens: main (clusters, nodes, containers, live charts), preview (the plan
for a target), migrate (the confirmation modal), progress, evacuate, history, help, welcome
(no config yet)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from textual.app import App
from textual.screen import Screen

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp


class OnWhimbrel:
    """Mixed into the console's screens: their app, typed as the console."""

    app: App

    @property
    def wapp(self) -> WhimbrelApp:
        return cast("WhimbrelApp", self.app)


def all_screen_classes() -> tuple[type[Screen], ...]:
    from whimbrel.app.screens.evacuate import EvacuateScreen
    from whimbrel.app.screens.help import HelpScreen
    from whimbrel.app.screens.history import HistoryScreen
    from whimbrel.app.screens.main import MainScreen
    from whimbrel.app.screens.migrate import MigrateModal
    from whimbrel.app.screens.preview import PreviewScreen
    from whimbrel.app.screens.progress import ProgressScreen
    from whimbrel.app.screens.welcome import WelcomeScreen

    return (
        MainScreen,
        PreviewScreen,
        MigrateModal,
        ProgressScreen,
        EvacuateScreen,
        HistoryScreen,
        HelpScreen,
        WelcomeScreen,
    )


def colours_of(app: App) -> Mapping[str, str]:
    """The theme's colours, for widgets that style Rich text (they re-read it on each draw)."""
    return app.theme_variables
