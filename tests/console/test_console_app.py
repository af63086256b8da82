"""The app around the screens: no config, themes, keys, help, palette, history, settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.console.conftest import SIZE
from tests.console.fake_backend import CONFIG_PATH, FakeBackend, default_history, fake_config
from tests.console.helpers import history_opened, settled, text_of, until
from whimbrel.app.console import SCREENS, WhimbrelApp, binding_ids
from whimbrel.app.messages import NodeExamined, NodeInventoryLoaded
from whimbrel.app.screens.help import HelpScreen
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.screens.welcome import WelcomeScreen
from whimbrel.app.settings import ConsoleSettings, RememberedState, console_settings
from whimbrel.backends.config import ConfigError
from whimbrel.backends.doctor import Check, NodeReport
from whimbrel.backends.inventory import NodeInventory
from whimbrel.themes import THEMES
from whimbrel.widgets.container_table import ContainerTable


async def test_without_a_config_the_console_says_where_it_looked_and_how_to_start(
    make_app,
) -> None:
    app = make_app(no_config=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        text = text_of(app.screen.query_one("#welcome-text", Static))
        assert str(CONFIG_PATH) in text
        assert "whimbrel demo" in text
        assert "[[nodes]]" in text


async def test_the_theme_picked_is_remembered_for_the_next_run(tmp_path: Path) -> None:
    state = RememberedState(tmp_path / "console.json")

    def make() -> WhimbrelApp:
        return WhimbrelApp(FakeBackend(), config_path=CONFIG_PATH, remembered=state,
                           settings=ConsoleSettings(refresh_s=3600, rtt_every_s=3600))  # fmt: skip

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "whimbrel-dark"
        app.theme = "whimbrel-light"
        await pilot.pause()
    again = make()
    async with again.run_test(size=SIZE):
        assert again.theme == "whimbrel-light"


def test_a_changed_config_theme_beats_the_remembered_one(tmp_path: Path) -> None:
    state = RememberedState(tmp_path / "console.json")
    state.remember_theme("whimbrel-light", config_theme="whimbrel-dark")
    assert state.theme("whimbrel-dark", THEMES) == "whimbrel-light"  # config unchanged
    assert state.theme(None, THEMES) == "whimbrel-light"
    state.remember_theme("whimbrel-light", config_theme=None)
    assert state.theme("whimbrel-dark", THEMES) == "whimbrel-dark"  # config edited since


async def test_bindings_are_overridable_from_the_config(make_app) -> None:
    settings = ConsoleSettings(refresh_s=3600, rtt_every_s=3600, keys={"main.migrate": "M"})
    app = make_app(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))


def test_every_binding_has_an_id() -> None:
    for cls in (WhimbrelApp, ContainerTable, *SCREENS):
        for binding in cls.__dict__.get("BINDINGS", []):  # ours, not Textual's inherited ones
            assert binding.id, f"{cls.__name__}: {binding.key} has no id"
    assert {"app.quit", "app.help", "main.filter", "main.migrate"} <= binding_ids()


@pytest.mark.parametrize(
    ("console", "says"),
    [
        ({"colour": "red"}, "console.colour: unknown field"),
        ({"theme": "solarized"}, "console.theme: expected one of whimbrel-dark, whimbrel-light"),
        ({"read_only": "yes"}, "console.read_only: expected true or false"),
        ({"lazy_restore": 1}, "console.lazy_restore: expected true or false"),
        ({"refresh": "100ms"}, "console.refresh: at least 1 s"),
        ({"refresh": "soon"}, "console.refresh"),
        ({"keys": {"main.explode": "x"}}, "console.keys.main.explode: no binding has this id"),
        ({"keys": {"main.migrate": "control plus m"}}, "console.keys.main.migrate: expected"),
        ({"keys": "m"}, "console.keys: expected a table"),
    ],
)
def test_a_wrong_console_table_is_refused_naming_the_field(console: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        console_settings(fake_config(console), THEMES, binding_ids())
    assert says in str(caught.value)
    assert str(CONFIG_PATH) in str(caught.value)


def test_a_good_console_table_becomes_settings() -> None:
    settings = console_settings(
        fake_config({"theme": "whimbrel-light", "read_only": True, "refresh": "10s",
                     "downtime_target": "500ms", "lazy_restore": True,
                     "keys": {"app.quit": "ctrl+q, f10"}}),
        THEMES, binding_ids(),
    )  # fmt: skip
    assert settings == ConsoleSettings(
        theme="whimbrel-light", read_only=True, refresh_s=10.0, downtime_target_s=0.5,
        lazy_restore=True, keys={"app.quit": "ctrl+q,f10"},
    )  # fmt: skip


async def test_read_only_from_the_config_refuses_migrations(make_app) -> None:
    app = make_app(settings=ConsoleSettings(refresh_s=3600, rtt_every_s=3600, read_only=True))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("m")
        assert isinstance(app.screen, MainScreen)


async def test_help_lists_the_keys_with_their_ids_as_remapped(make_app) -> None:
    settings = ConsoleSettings(refresh_s=3600, rtt_every_s=3600, keys={"main.history": "H"})
    app = make_app(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = text_of(app.screen.query_one("#help Static", Static))
        assert "main.history" in text and "History" in text
        assert "main.migrate" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_the_palette_offers_the_console_commands(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"read-only")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.read_only)
        assert "READ-ONLY" in app.sub_title


async def test_history_shows_predicted_against_measured(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await history_opened(pilot)
        first = [str(c) for c in table.get_row_at(0)]
        assert "kv" in first and "done" in first and "151 ms (120 ms)" in first


async def test_history_columns_are_named_for_what_they_show(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await history_opened(pilot)
        headers = [str(c.label) for c in table.ordered_columns]
        row = dict(zip(headers, (str(c) for c in table.get_row_at(0)), strict=True))
        # west-1/kv: done, 2 pre-copy rounds, 1.9 s from its first round (1.5 s predicted).
        assert row["STATUS"] == "done"
        assert row["ROUNDS"] == "2"
        assert row["TOTAL (PRED)"] == "1.9 s (1.5 s)"
        assert row["SENT (PRED)"] == "23 MiB (23.4 MiB)"


async def test_unfinished_migrations_are_reported_at_start_and_settled_on_request(
    make_app,
) -> None:
    backend = FakeBackend(history=[replace(default_history()[0], status="pending", ok=False)])
    backend.unsettled = ["migration 42 of west-1/kv finished while whimbrel was away"]
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: bool(app._notifications))
        assert "never finished" in next(iter(app._notifications)).message
        app.settle_unfinished()
        await until(pilot, lambda: len(app._notifications) == 2)
        assert "while whimbrel was away" in list(app._notifications)[-1].message


async def test_quitting_closes_the_backend(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("q")
    assert backend.closed and app.return_value == 0


def test_answers_arriving_as_the_console_closes_are_filed_not_a_crash(make_app) -> None:
    """No screen is left on the stack while the app closes; a node's answer or its doctor's
    can still arrive then (a lab run died of it: ScreenStackError)."""
    app = make_app()
    assert not app.screen_stack
    app._inventory_loaded(NodeInventoryLoaded(NodeInventory("west-2", "west", False)))
    report = NodeReport("east-1", "east", (Check("ssh", True, "host key verified"),))
    app._node_examined(NodeExamined(report))
    assert app.observed.readiness["east-1"] is report
