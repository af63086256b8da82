"""Following the hand-over the source's daemon runs: through a lost connection, and giving up
on it only when the source stays out of reach (pure logic, with a scripted session)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from whimbrel.backends import handover
from whimbrel.backends.events import LogLine, Phase, PhaseChanged
from whimbrel.backends.handover import HandoverUnsettled, follow
from whimbrel.backends.migration_context import Journal, PhaseRun
from whimbrel.backends.ssh import NodeUnreachable

LOG = [
    {"kind": "frozen"},
    {"kind": "sent", "sent_bytes": 1000},
    {"kind": "restored"},
    {"kind": "end", "ok": True, "running_on": "target"},
]


class ScriptedSource:
    """stream_python gives each call's lines of the daemon's log, then drops if told to."""

    def __init__(self, *calls: tuple[int, bool]) -> None:
        self.calls = list(calls)  # (how many lines of LOG, then lost?)
        self.node = SimpleNamespace(name="east-1")

    async def stream_python(self, *_: Any, **__: Any) -> AsyncIterator[str]:
        lines, lost = self.calls.pop(0)
        for step in LOG[:lines]:
            yield json.dumps(step)
        if lost:
            raise NodeUnreachable("east-1", "connection lost")


async def _follow(source: ScriptedSource) -> tuple[list[Any], dict[str, Any]]:
    followed = PhaseRun(follow(Journal({"id": "m"}), source, "m"))  # type: ignore[arg-type]
    events = [e async for e in followed]
    return events, followed.result


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instantly(_: float) -> None:
        return None

    monkeypatch.setattr(handover.asyncio, "sleep", instantly)


def test_a_connection_lost_mid_hand_over_is_made_again_and_the_log_read_on_once() -> None:
    events, final = asyncio.run(_follow(ScriptedSource((2, True), (4, False))))
    restores = [e for e in events if isinstance(e, PhaseChanged) and e.phase == Phase.RESTORE]
    assert len(restores) == 1  # the lines read before the loss are not replayed
    warnings = [e for e in events if isinstance(e, LogLine) and e.level == "warning"]
    assert len(warnings) == 1 and "connection lost" in warnings[0].text
    assert final["ok"] and final["running_on"] == "target"


def test_a_log_that_ends_early_is_followed_again() -> None:
    _, final = asyncio.run(_follow(ScriptedSource((1, False), (4, False))))
    assert final["ok"]


def test_a_source_out_of_reach_past_the_grace_leaves_the_hand_over_unsettled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handover, "FOLLOW_GRACE_S", 0.0)
    with pytest.raises(HandoverUnsettled) as raised:
        asyncio.run(_follow(ScriptedSource((2, True), (0, True), (0, True))))
    assert raised.value.running_on == "unknown"
    assert "whimbrel ls" in str(raised.value)
