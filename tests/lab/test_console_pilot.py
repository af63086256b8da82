"""The console driven for real against the lab: select kv on east-1, choose west-1, see the
plan, confirm, watch the engine's events arrive in order, find kv on west-1; then the same
flow brings kv back to east-1, so the lab is as the other tests expect it."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.console.helpers import until
from tests.lab.migration_tools import running_on
from whimbrel.app.backend import SSHBackend
from whimbrel.app.console import WhimbrelApp
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.screens.preview import PreviewScreen
from whimbrel.app.screens.progress import ProgressScreen
from whimbrel.app.settings import ConsoleSettings, RememberedState
from whimbrel.backends.config import load_config
from whimbrel.backends.events import (
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundStarted,
)
from whimbrel.backends.lab import lab as lab_module
from whimbrel.backends.model import ModelInputs
from whimbrel.widgets.container_table import ContainerTable

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
ORDER = [Phase.PREFLIGHT, Phase.PRECOPY, Phase.FINAL, Phase.RESTORE, Phase.CLEANUP, Phase.DONE]


def check_in_order(events: list[MigrationEvent]) -> MigrationFinished:
    """Phases in the engine's order, each round started before it finished, rounds numbered
    up, the final round last, MigrationFinished at the very end."""
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases[0] == Phase.PREFLIGHT and phases[-1] == Phase.DONE, phases
    assert [ORDER.index(p) for p in phases] == sorted(ORDER.index(p) for p in phases), phases
    started, finished = [], []
    for e in events:
        if isinstance(e, RoundStarted):
            assert len(started) == len(finished), "a round started before the last one finished"
            started.append(e.index)
        elif isinstance(e, RoundFinished):
            assert started and started[-1] == e.index
            finished.append(e)
    assert finished and finished[-1].final and not any(r.final for r in finished[:-1])
    assert [r.index for r in finished] == sorted(r.index for r in finished)
    last = events[-1]
    assert (
        isinstance(last, MigrationFinished)
        and sum(isinstance(e, MigrationFinished) for e in events) == 1
    )
    return last


async def migrate_with_the_console(pilot: Pilot, ref: str, target: str) -> list[MigrationEvent]:
    app = pilot.app
    assert isinstance(app, WhimbrelApp)
    await until(pilot, lambda: isinstance(app.screen, MainScreen), timeout=60)
    table = app.screen.query_one(ContainerTable)
    await until(pilot, lambda: table.move_to(ref), timeout=60)
    await until(pilot, lambda: app.selected == ref)
    await pilot.press("enter")  # the plan preview
    await until(pilot, lambda: isinstance(app.screen, PreviewScreen))
    targets = app.screen.query_one("#targets", OptionList)
    targets.highlighted = targets.get_option_index(target)
    await until(pilot, lambda: app.target == target)
    # RTT, throughput (16 MiB over the WAN) and a few dirty-rate samples come in.
    await until(pilot, lambda: app.screen.plan is not None, timeout=90)
    _planned_from_the_lab(app.screen.plan.inputs, lab_module.status())
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateModal))
    assert app.focused is not None and app.focused.id == "cancel"
    await pilot.press("right", "enter")  # Migrate
    await until(pilot, lambda: isinstance(app.screen, ProgressScreen))
    progress = app.screen
    await until(pilot, lambda: progress.done, timeout=400)
    events = list(progress.events)
    await pilot.press("escape")
    return events


def _planned_from_the_lab(inputs: ModelInputs, lab: dict) -> None:
    """The preview planned from the path as the lab shapes it: an RTT near the WAN's (the
    relay adds it; the grid's 1500 probes fell within 3 ms of it) and a throughput under the
    WAN's cap."""
    assert abs(inputs.rtt - lab["rtt_ms"] / 1e3) <= 0.005 + 0.25 * lab["rtt_ms"] / 1e3
    assert 0 < inputs.bandwidth <= 1.05 * lab["bandwidth_mbit"] * 1e6 / 8
    assert inputs.size > 0 and inputs.dirty_rate >= 0


async def test_the_console_migrates_kv_to_west_1_and_back(lab: dict, tmp_path: Path) -> None:
    assert running_on("kv") == ["east-1"], "the lab's kv should start on east-1"
    app = WhimbrelApp(
        SSHBackend(load_config(Path(lab["config"]))),
        config_path=Path(lab["config"]),
        settings=ConsoleSettings(refresh_s=2.0, rtt_every_s=2.0),
        remembered=RememberedState(tmp_path / "console.json"),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        there = check_in_order(await migrate_with_the_console(pilot, "east-1/kv", "west-1"))
        assert there.ok and there.running_on == "west-1", there.error
        assert running_on("kv") == ["west-1"]
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: "west-1/kv" in table.visible_refs, timeout=30)
        assert "east-1/kv" not in table.visible_refs
        await until(pilot, lambda: table.current_ref == "west-1/kv", timeout=10)

        back = check_in_order(await migrate_with_the_console(pilot, "west-1/kv", "east-1"))
        assert back.ok and back.running_on == "east-1", back.error
    assert running_on("kv") == ["east-1"]
