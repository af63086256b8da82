"""The source's agent says how far a pre-copy round got while it sends: a progress line at least
once a second, also while a write is blocked on a slow link, all of them before the round's
answer, which still parses. Run as a node runs it (the shipped agent, its node modules inlined)
with the receiver behind a local command, throttled, standing in for ssh; runc's dump is the
one piece faked (a page file put where the dump would leave it)."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tests.node_helpers import load, write

agent = load("agent")

# The throttled link: the receiver's session as sshd's forced command runs it, its input fed
# 64 KiB at a time (about 1.6 MB/s), so the source's 1 MiB frames block in their writes.
SLOW_LINK = """
import os, subprocess, sys, time
os.environ["SSH_ORIGINAL_COMMAND"] = sys.argv[1]
receiver = subprocess.Popen([sys.executable, {receiver!r}], stdin=subprocess.PIPE)
while True:
    data = os.read(0, 65536)
    if not data:
        break
    receiver.stdin.write(data)
    receiver.stdin.flush()
    time.sleep(0.04)
receiver.stdin.close()
sys.exit(receiver.wait())
"""


class TimedLines(io.TextIOBase):
    """A stdout that notes when each write came."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return len(text)

    def lines(self) -> list[tuple[float, dict]]:
        text = "".join(t for _, t in self.writes)
        assert text.endswith("\n")
        # Every write is one whole line (nodelib.out), so each line's time is its write's.
        assert all(t.count("\n") == 1 and t.endswith("\n") for _, t in self.writes)
        return [(at, json.loads(t)) for at, t in self.writes]


def test_a_slow_rounds_progress_comes_at_least_once_a_second_then_its_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, wd, img, src_upper = (tmp_path / d for d in ("target", "wd", "img", "src-upper"))
    for d in (here, wd, img, src_upper, tmp_path / "upper"):
        d.mkdir()
    receiver = write("receiver", here)
    (here / "target.json").write_text(json.dumps({"upper_dir": str(tmp_path / "upper")}))
    link = [sys.executable, "-c", SLOW_LINK.format(receiver=str(receiver))]
    pages = os.urandom(3 << 20)  # about 2 s over the throttled link
    (img / "pages-1.img").write_bytes(pages)
    (img / "inventory.img").write_bytes(b"inventory")
    monkeypatch.setattr(agent, "dump", lambda *_: (str(img), 0.01, None))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    stdout = TimedLines()
    monkeypatch.setattr(sys, "stdout", stdout)
    prepared = {"upper_dir": str(src_upper), "volumes": {}}
    transfer = agent.Transfer([link], "rounds")
    try:
        agent.out(agent._round("m", "c", str(wd), prepared, transfer, 0, lambda: None))
        assert transfer.close() is None
        assert transfer.session.wait(timeout=30) == 0
    finally:
        transfer.close(timeout=5)
    monkeypatch.undo()  # stdout back before anything else is printed

    lines = stdout.lines()
    *progress, (_, answer) = lines
    assert answer["sent_bytes"] >= len(pages) and "progress" not in answer
    assert progress and all(set(line) == {"progress"} for _, line in progress)
    gaps = [b[0] - a[0] for a, b in pairwise(lines)]
    assert max(gaps) <= 1.0, gaps
    said = [line["progress"] for _, line in progress]
    assert {p["round"] for p in said} == {0}
    sent = [p["sent"] for p in said]
    assert sent == sorted(sent) and sent[0] == 0
    # Lines came mid-stream, while the frames were blocked on the link, not only at its ends;
    # the last one counts the whole stream (the pages, and the headers and tar around them).
    assert any(0 < s < len(pages) for s in sent)
    assert sent[-1] >= answer["sent_bytes"]
    assert said[-1]["t"] == pytest.approx(answer["send_s"] - answer["sessions_s"], abs=0.1)
    assert len(said) >= 4


def test_striped_counts_the_bytes_it_hands_to_the_sessions() -> None:
    sinks = [io.BytesIO(), io.BytesIO()]
    stream = agent.Striped(sinks)
    stream.write(b"x" * 10)
    assert stream.written == 0  # still pending: not handed to a session yet
    stream.write(bytes(2 * agent.BLOCK))
    stream.end()
    assert stream.written == 2 * agent.BLOCK + 10
