"""A conversation with a node helper (backends/ssh.py Conversation): a long answer preceded by
progress lines, handed over as they come, and given up only after a silence, however long
the whole takes (a scripted process in place of the ssh channel)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from whimbrel.backends.config import Node
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.ssh import Conversation, NodeUnreachable


class ScriptedProcess:
    """Answers each line written to it with `script`: (seconds to wait, the line) pairs."""

    def __init__(self, *script: tuple[float, Any]) -> None:
        self.script = list(script)
        self.written: list[str] = []
        self.stdin = self
        self.stdout = self
        self.stderr = self

    def write(self, text: str) -> None:
        self.written.append(text)

    async def readline(self) -> str:
        if not self.script:
            return ""  # EOF: the helper ended
        wait, line = self.script.pop(0)
        await asyncio.sleep(wait)
        return (line if isinstance(line, str) else json.dumps(line)) + "\n"

    async def read(self) -> str:
        return "Traceback: it broke"


def _talk(process: ScriptedProcess) -> Conversation:
    return Conversation(Node("east-1", "east", "198.18.1.10"), "agent", process)  # type: ignore[arg-type]


async def _replies(conversation: Conversation, idle: float) -> list[dict[str, Any]]:
    return [reply async for reply in conversation.exchange("round 0", idle)]


def test_an_exchange_yields_each_progress_line_then_the_answer() -> None:
    process = ScriptedProcess(
        (0, {"progress": {"round": 0, "sent": 0, "t": 0.0}}),
        (0, {"progress": {"round": 0, "sent": 4096, "t": 0.5}}),
        (0, {"sent_bytes": 4096}),
        (0, {"fired": True}),  # the next question's: not read as this answer's
    )
    replies = asyncio.run(_replies(_talk(process), idle=1.0))
    assert [r.get("progress", {}).get("sent") for r in replies[:2]] == [0, 4096]
    assert replies[-1] == {"sent_bytes": 4096}
    assert process.written == ["round 0\n"]
    assert process.script == [(0, {"fired": True})]


def test_an_exchange_that_keeps_talking_outlasts_its_idle_timeout() -> None:
    ticks = [(0.03, {"progress": {"round": 0, "sent": n, "t": n}}) for n in range(6)]
    process = ScriptedProcess(*ticks, (0.03, {"sent_bytes": 6}))
    replies = asyncio.run(_replies(_talk(process), idle=0.1))  # 0.21 s in all
    assert replies[-1] == {"sent_bytes": 6}


def test_a_silence_longer_than_the_idle_timeout_gives_the_exchange_up() -> None:
    process = ScriptedProcess((0, {"progress": {"round": 0, "sent": 0, "t": 0}}), (1.0, {}))
    with pytest.raises(NodeUnreachable, match="no answer to 'round 0'"):
        asyncio.run(_replies(_talk(process), idle=0.05))


def test_an_error_after_progress_raises_with_the_helpers_words() -> None:
    process = ScriptedProcess(
        (0, {"progress": {"round": 0, "sent": 0, "t": 0}}), (0, {"error": "target: disk full"})
    )
    with pytest.raises(WhimbrelError, match="east-1: agent: target: disk full"):
        asyncio.run(_replies(_talk(process), idle=1.0))


def test_a_helper_that_dies_mid_exchange_says_what_it_wrote_on_stderr() -> None:
    process = ScriptedProcess((0, {"progress": {"round": 0, "sent": 0, "t": 0}}))
    with pytest.raises(WhimbrelError, match="Traceback: it broke"):
        asyncio.run(_replies(_talk(process), idle=1.0))


def test_ask_still_takes_one_answer() -> None:
    process = ScriptedProcess((0, {"fired": True}))
    assert asyncio.run(_talk(process).ask("handover", timeout=1.0)) == {"fired": True}
