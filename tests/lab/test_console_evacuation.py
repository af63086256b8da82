"""The console's evacuation driven for real against the lab: east-1 (the lab's `kv` Redis and
`hot` memwriter) emptied to the west cluster from the cluster panel, planned by the shared
planner, both migrations run at once and followed side by side until both moved; then the two
evacuated back to east-1 the same way (their targets chosen with `t`), so the lab ends as the
other tests expect it. Should the console not bring them back, `whimbrel evacuate` does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.console.helpers import until
from tests.lab.migration_tools import running_on
from whimbrel.app.backend import SSHBackend
from whimbrel.app.console import WhimbrelApp
from whimbrel.app.screens.evacuate import EvacuateScreen
from whimbrel.app.screens.evacuation_progress import EvacuationProgressScreen
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.settings import ConsoleSettings, RememberedState
from whimbrel.backends.config import load_config
from whimbrel.backends.evacuation import EvacuationFinished, EvacuationPlan
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.node_list import NodeList

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]
NAMES = ("kv", "hot")
WEST = {"west-1", "west-2"}


async def _planned(pilot: Pilot) -> EvacuationPlan:
    """The evacuate screen's plan, once the dirty rates and every path are measured."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, EvacuateScreen), timeout=10)
    screen = app.screen
    # A few dirty-rate samples, then RTT and throughput (16 MiB over the WAN) of each path.
    await until(pilot, lambda: screen.plan is not None and bool(screen.plan.moves), timeout=180)
    assert screen.plan is not None
    return screen.plan


async def _run(pilot: Pilot) -> EvacuationFinished:
    """Confirm the plan shown, follow the migrations to the end, close the screen."""
    app = pilot.app
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateModal), timeout=10)
    assert app.focused is not None and app.focused.id == "cancel"
    await pilot.press("right", "enter")  # Migrate
    await until(pilot, lambda: isinstance(app.screen, EvacuationProgressScreen), timeout=10)
    progress = app.screen
    # Side by side: each started migration has its own row, its phase moving on.
    started = lambda: any(t.phase is not None for t in progress.tracks.values())  # noqa: E731
    await until(pilot, started, timeout=120)
    await until(pilot, lambda: progress.done, timeout=600)
    assert progress.finished is not None
    finished = progress.finished
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, MainScreen), timeout=10)
    return finished


async def _evacuate_east_1(pilot: Pilot) -> EvacuationFinished:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MainScreen), timeout=60)
    await until(pilot, lambda: app.observed.all_answered, timeout=60)
    await pilot.press("n")
    nodes = app.screen.query_one(NodeList)
    await until(pilot, lambda: nodes.has_focus)
    nodes.highlighted = nodes.get_option_index("east-1")
    await pilot.press("e")
    plan = await _planned(pilot)
    assert {m.ref for m in plan.moves} == {f"east-1/{n}" for n in NAMES}, plan
    assert {m.target for m in plan.moves} <= WEST and plan.stays == ()
    assert plan.total_time_s > 0 and plan.one_by_one_s > 0
    assert min(m.start_s for m in plan.moves) == 0.0
    return await _run(pilot)


async def _bring_back(pilot: Pilot, where: dict[str, str]) -> EvacuationFinished:
    """Mark the two where they run now, evacuate them with east-1 chosen for each."""
    app = pilot.app
    table = app.screen.query_one(ContainerTable)
    table.focus()  # the cluster panel had it: space there would mark a whole node
    refs = [f"{where[n]}/{n}" for n in NAMES]
    await until(pilot, lambda: all(ref in table.visible_refs for ref in refs), timeout=60)
    for ref in refs:
        table.move_to(ref)
        await until(pilot, lambda ref=ref: app.selected == ref)
        await pilot.press("space")
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, EvacuateScreen), timeout=10)
    screen = app.screen
    await until(pilot, lambda: set(screen.targets) == set(refs), timeout=60)
    rows = screen.query_one("#evacuate-table")
    for ref in refs:
        rows.move_cursor(row=rows.get_row_index(ref))
        while screen.targets[ref] != "east-1":
            await pilot.press("t")
    plan = await _planned(pilot)
    assert {(m.ref, m.target) for m in plan.moves} == {(ref, "east-1") for ref in refs}
    return await _run(pilot)


async def test_the_console_evacuates_east_1_to_the_west_and_back(lab: dict, tmp_path: Path) -> None:
    assert running_on("kv") == ["east-1"] and running_on("hot") == ["east-1"]
    config = Path(lab["config"])
    app = WhimbrelApp(
        SSHBackend(load_config(config)),
        config_path=config,
        settings=ConsoleSettings(refresh_s=2.0, rtt_every_s=2.0),
        remembered=RememberedState(tmp_path / "console.json"),
    )
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            there = await _evacuate_east_1(pilot)
            assert there.ok, there.to_json()
            where = {r.ref.split("/")[1]: r.running_on for r in there.results}
            assert set(where) == set(NAMES) and set(where.values()) <= WEST
            for name, node in where.items():
                assert running_on(name) == [node]
            assert there.wall_s > 0 and there.migrations_s > 0

            back = await _bring_back(pilot, where)
            assert back.ok, back.to_json()
            assert all(r.running_on == "east-1" for r in back.results)
            table = app.screen.query_one(ContainerTable)
            await until(pilot, lambda: "east-1/kv" in table.visible_refs, timeout=30)
    finally:
        if running_on("kv") != ["east-1"] or running_on("hot") != ["east-1"]:
            _evacuate_west_headless(str(config))
    assert running_on("kv") == ["east-1"] and running_on("hot") == ["east-1"]


def _evacuate_west_headless(config: str) -> None:
    """Whatever the console left in the west, back to east-1 by `whimbrel evacuate`."""
    subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "evacuate", "west",
         "--to", "east-1", "--yes"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
