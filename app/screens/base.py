"""What every console screen shares: its app, typed as the console, and the theme's colours.

Screens import this module and each other, never the console at run time: the console imports
the screens, so the import graph stays one-way (tests/test_architecture.py holds it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from textual.app import App

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp
    from whimbrel.app.observations import Observations


class ConsoleScreen:
    """Mixed into the console's screens: their app, typed as the console."""

    app: App

    @property
    def console(self) -> WhimbrelApp:
        return cast("WhimbrelApp", self.app)


def against_prediction(
    measured: float | None,
    predicted: float | None,
    fmt: Callable[[float], str],
    *,
    missing: str = "?",
    label: str = "predicted ",
) -> str:
    """A measured value with the model's prediction after it: "2.1 s (predicted 2.3 s)". A
    table whose header already says PRED passes no label."""
    got = fmt(measured) if measured is not None else missing
    return f"{got} ({label}{fmt(predicted)})" if predicted is not None else got


def colours_of(app: App) -> Mapping[str, str]:
    """The theme's colours, for widgets that style Rich text (they re-read it on each draw)."""
    return app.theme_variables


def where_it_runs(
    observed: Observations | None, name: str, running_on: str, src: str, dst: str, ended_at: float
) -> str | None:
    """Where a container runs after its migration ended, in words: from the engine, else from
    an inventory taken after the end (`ended_at`, monotonic); None until one was taken."""
    if running_on and running_on != "unknown":
        return f"{name} is running on {running_on}."
    if observed is None or not observed.answered_since(ended_at):
        return None
    found = observed.find(name)
    if found is None:
        return f"{name} is not running on any node that answers."
    if found.node == dst:
        where = "the target: the move itself went through"
    elif found.node == src:
        where = "where it was"
    else:
        where = "neither source nor target"
    return f"{name} is running on {found.node}, {where} (a fresh inventory says so)."
