"""Each node's readiness for migrations, from its doctor: asked once after the node first
answers, marked in the cluster panel when something needs the operator."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.console.conftest import SIZE, SMALL
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import settled, until
from whimbrel.app.measuring import examine_node
from whimbrel.app.messages import NodeExamined
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.node_list import NodeList


async def examined(pilot: Pilot, ref: str = "east-1/kv") -> None:
    """Settled on `ref` (helpers.settled), and every answering node's doctor has answered."""
    app = pilot.app
    await settled(pilot, ref)
    await until(pilot, lambda: len(app.observed.readiness) == 3 and not app.observed.examining)


def prompt(app, node: str) -> str:
    return str(app.screen.query_one(NodeList).get_option(node).prompt)


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


async def test_at_80x24_the_panel_folded_the_tables_title_names_the_unready_node(
    make_app,
) -> None:
    app = make_app(FakeBackend(doctor_finds={"east-2": ("experimental",)}))
    async with app.run_test(size=SMALL) as pilot:
        await examined(pilot)
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: "east-2 not ready" in str(table.border_title))


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
