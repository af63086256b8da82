"""Fixtures for console tests: an app on the fake backend, with its state kept in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.console.fake_backend import CONFIG_PATH, FakeBackend
from whimbrel.app.console import WhimbrelApp
from whimbrel.app.settings import ConsoleSettings, RememberedState
from whimbrel.backends.costs import Costs

SIZE = (120, 40)
SMALL = (80, 24)  # a common terminal: narrow and short, the console folds its side panels


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a test does is remembered in the real home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _hand_set_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans in snapshots do not move when `whimbrel bench report` recalibrates costs.json."""
    monkeypatch.setattr("whimbrel.backends.costs.DEFAULT_COSTS", Costs())


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., WhimbrelApp]:
    def make(
        backend: FakeBackend | None = None,
        *,
        settings: ConsoleSettings | None = None,
        read_only: bool = False,
        no_config: bool = False,
    ) -> WhimbrelApp:
        return WhimbrelApp(
            None if no_config else (backend or FakeBackend()),
            config_path=CONFIG_PATH,
            # Long intervals: after the first answers nothing moves, so snapshots hold still.
            settings=settings or ConsoleSettings(refresh_s=3600, rtt_every_s=3600),
            read_only=read_only,
            remembered=RememberedState(tmp_path / "state" / "console.json"),
        )

    return make
