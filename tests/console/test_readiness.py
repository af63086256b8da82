"""Each node's readiness for migrations, from its doctor: asked once, after every node's first
answer, marked in the cluster panel when something needs the operator, every check with its
remedy on the readiness screen (`d`), asked again there (`r`)."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from textual.widgets import Static

from tests.console.conftest import SIZE, SMALL
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import settled, text_of, until
from whimbrel.app.measuring import examine_node
from whimbrel.app.messages import NodeExamined
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.readiness import ReadinessScreen
from whimbrel.backends.inventory import NodeInventory
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.node_list import NodeList

EXPERIMENTAL_OFF = 'add "experimental": true to /etc/docker/daemon.json'


async def examined(pilot: Pilot, ref: str = "east-1/kv") -> None:
    """Settled on `ref` (helpers.settled), and every answering node's doctor has answered."""
    app = pilot.app
    await settled(pilot, ref)
    await until(pilot, lambda: len(app.observed.readiness) == 3 and not app.observed.examining)


def prompt(app, node: str) -> str:
    return str(app.screen.query_one(NodeList).get_option(node).prompt)


async def opened(pilot: Pilot, ref: str) -> ReadinessScreen:
    """The readiness screen of `ref`'s node, opened with `d` from the main screen."""
    await examined(pilot, ref)
    await pilot.press("d")
    await until(pilot, lambda: isinstance(pilot.app.screen, ReadinessScreen))
    return pilot.app.screen


def checks_of(screen: ReadinessScreen) -> str:
    return text_of(screen.query_one("#readiness-checks", Static))


async def test_each_answering_node_is_examined_once_after_its_first_answer(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot)
        await pilot.press("r")  # the inventory again: not the doctor
        await until(pilot, lambda: backend.inventory_calls == 8)
        await pilot.pause()
        # west-2 does not answer: its doctor waits for it to.
        assert sorted(backend.examined) == ["east-1", "east-2", "west-1"]


class SlowFirstAnswer(FakeBackend):
    """east-2 answers for the first time only once `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def node_inventory(self, node: str) -> NodeInventory:
        if node == "east-2":
            await self.answer.wait()
        return await super().node_inventory(node)


async def test_no_doctor_runs_until_every_node_has_answered_once(make_app) -> None:
    backend = SlowFirstAnswer()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.observed.nodes["east-1"] is not None)
        await pilot.pause(0.2)
        assert backend.examined == []  # the doctors' work would slow east-2's answer
        backend.answer.set()
        await until(pilot, lambda: len(backend.examined) == 3)
        assert sorted(backend.examined) == ["east-1", "east-2", "west-1"]


async def test_a_node_that_fails_a_required_check_reads_not_ready_naming_it(make_app) -> None:
    app = make_app(FakeBackend(doctor_finds={"east-2": ("experimental", "soft-dirty")}))
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot)
        # The failure, not the warning (soft-dirty), in place of the container count.
        assert prompt(app, "east-2").splitlines() == ["  ● east-2  not ready", "    experimental"]
        assert "not ready" not in prompt(app, "east-1")


async def test_warnings_alone_read_as_warn_and_a_ready_node_says_nothing_more(make_app) -> None:
    app = make_app(FakeBackend(doctor_finds={"west-1": ("soft-dirty", "lazy-pages")}))
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot)
        assert prompt(app, "west-1").endswith("warn: lazy-pages +1")
        assert prompt(app, "east-1") == "  ● east-1  2 containers"


async def test_d_lists_every_check_of_the_containers_node_and_the_remedy_of_the_failed_one(
    make_app,
) -> None:
    app = make_app(FakeBackend(doctor_finds={"east-2": ("experimental",)}))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, "east-2/queue")
        box = screen.query_one("#readiness")
        assert box.border_title == "east-2 (east): NOT READY (1 to fix)"
        lines = checks_of(screen).splitlines()
        failed = next(
            i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "experimental"]
        )
        assert EXPERIMENTAL_OFF in lines[failed + 1] and lines[failed + 1].strip().startswith("→")
        assert any(line.split()[:2] == ["ok", "criu"] for line in lines)
        assert any(line.split()[:2] == ["ok", "link:west-2"] for line in lines)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_d_in_the_cluster_panel_opens_the_highlighted_node(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot)
        nodes = app.screen.query_one(NodeList)
        nodes.focus()
        nodes.highlighted = nodes.get_option_index("west-1")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ReadinessScreen))
        assert app.screen.node == "west-1"
        assert app.screen.query_one("#readiness").border_title == "west-1 (west): ready"


async def test_the_palette_opens_the_readiness_of_the_containers_node(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot, "west-1/web")
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"node readiness")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReadinessScreen))
        assert app.screen.node == "west-1"


async def test_r_asks_the_doctor_again_and_the_screen_and_the_panel_show_its_answer(
    make_app,
) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, "east-1/kv")
        assert "FAIL" not in checks_of(screen)
        backend.doctor_finds["east-1"] = ("network-lock",)  # iptables removed meanwhile
        await pilot.press("r")
        await until(pilot, lambda: "FAIL" in checks_of(screen))
        assert "install iptables" in checks_of(screen)
        assert backend.examined.count("east-1") == 2
        await pilot.press("escape")
        await until(pilot, lambda: "not ready\n    network-lock" in prompt(app, "east-1"))


async def test_a_node_that_never_answered_can_be_examined_on_request(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await examined(pilot)
        nodes = app.screen.query_one(NodeList)
        nodes.focus()
        nodes.highlighted = nodes.get_option_index("west-2")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ReadinessScreen))
        assert "Not checked yet" in checks_of(app.screen)
        await pilot.press("r")
        await until(pilot, lambda: "FAIL" in checks_of(app.screen))
        assert checks_of(app.screen).split()[:3] == ["FAIL", "ssh", "no"]


async def test_at_80x24_the_panel_folded_the_tables_title_names_the_unready_node(
    make_app,
) -> None:
    app = make_app(FakeBackend(doctor_finds={"east-2": ("experimental",)}))
    async with app.run_test(size=SMALL) as pilot:
        await examined(pilot)
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: "east-2 not ready" in str(table.border_title))


async def test_at_80x24_the_readiness_screen_scrolls_to_its_last_check(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen = await opened(pilot, "east-1/kv")
        box = screen.query_one("#readiness")
        assert box.max_scroll_y > 0  # more checks than lines: it scrolls
        await pilot.press("end")
        await until(pilot, lambda: box.scroll_y == box.max_scroll_y)


async def test_a_doctor_that_breaks_reads_as_one_failed_check_naming_why() -> None:
    class Breaking(FakeBackend):
        async def doctor(self, node: str):
            raise OSError("connection lost")

    posted: list[object] = []
    await examine_node(Breaking(), "east-1", posted.append)
    [message] = posted
    assert isinstance(message, NodeExamined)
    [check] = message.report.checks
    assert not message.report.ready and check.detail == "connection lost"
    assert "whimbrel doctor east-1" in (check.remedy or "")
