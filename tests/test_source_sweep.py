"""The source's sweep of what dead migrations left (source.py `sweep`, run by each prepare):
their dumps go, what `recover` reads stays, and nothing that still holds is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.node_helpers import load

HOUR_AGO = time.time() - 3600


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load("source")
    (tmp_path / "base").mkdir()
    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(module, "BASE", str(tmp_path / "base"))
    monkeypatch.setattr(module, "LOCKS", str(tmp_path / "locks"))
    return module


def _work_dir(
    source: ModuleType, mig: str, files: dict[str, object], age: float = HOUR_AGO
) -> Path:
    """A migration's work dir holding `files` (JSON, or text), with a dump in it."""
    wd = Path(source.BASE) / mig
    (wd / "final").mkdir(parents=True)
    (wd / "final" / "pages-1.img").write_bytes(b"\0" * 4096)
    (wd / "index.json").write_text("[]")
    for name, content in files.items():
        (wd / name).write_text(content if isinstance(content, str) else json.dumps(content))
    os.utime(wd, (age, age))
    return wd


def _lock(source: ModuleType, cid: str, mig: str, since: float = HOUR_AGO) -> Path:
    path = Path(source.LOCKS) / cid
    path.write_text(json.dumps({"migration": mig, "since": since}))
    return path


DEAD_PID = "999999999"
RECOVERY = {"prepare.json": {}, "handover.cfg": {}, "handover.pid": DEAD_PID}


def test_a_settled_hand_over_keeps_only_what_recover_reads(source: ModuleType) -> None:
    wd = _work_dir(source, "m-settled", {**RECOVERY, "handover.json": {"ok": True}})
    lock = _lock(source, "c1", "m-settled")
    source.sweep("m-new")
    assert sorted(p.name for p in wd.iterdir()) == sorted([*RECOVERY, "handover.json"])
    assert not lock.exists()


def test_a_migration_that_never_armed_its_hand_over_goes_whole(source: ModuleType) -> None:
    wd = _work_dir(source, "m-preflight-dead", {"prepare.json": {}})
    source.sweep("m-new")
    assert not wd.exists()


@pytest.mark.parametrize(
    ("mig", "files", "age"),
    [
        # Within its preflight lease: aged when the test runs, not when it is collected (in
        # `make test` the unit tests run after 40 minutes of lab tests, past the 30 min lease).
        ("m-fresh", {"prepare.json": {}}, None),
        ("m-unsettled", {**RECOVERY, "handover.json": {"unsettled": True}}, HOUR_AGO),
        ("m-left", {**RECOVERY, "handover.json": {"ok": True, "source_left": True}}, HOUR_AGO),
        ("m-fired", {**RECOVERY, "handover.jsonl": '{"kind": "fired"}\n'}, HOUR_AGO),
    ],
)
def test_what_still_holds_is_left_whole(
    source: ModuleType, mig: str, files: dict[str, object], age: float | None
) -> None:
    age = time.time() if age is None else age
    wd = _work_dir(source, mig, files, age)
    lock = _lock(source, "c1", mig, since=age)
    source.sweep("m-new")
    assert (wd / "final" / "pages-1.img").exists() and (wd / "index.json").exists()
    assert lock.exists()


@pytest.fixture
def live_agent() -> Iterator[str]:
    mig = "m-agent-alive"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", mig])
    # Popen returns once the exec began: the new cmdline shows a moment later.
    deadline = time.monotonic() + 10
    while mig.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the stand-in agent never started"
        time.sleep(0.01)
    yield mig
    proc.kill()
    proc.wait()


def test_a_migration_with_a_process_alive_is_left_whole(
    source: ModuleType, live_agent: str
) -> None:
    wd = _work_dir(source, live_agent, {**RECOVERY, "handover.json": {"ok": False}})
    source.sweep("m-new")
    assert (wd / "final").exists()


def test_the_sweeping_migration_and_the_guard_are_left_alone(source: ModuleType) -> None:
    guard = Path(source.LOCKS) / ".guard"
    guard.write_text("")
    own = _lock(source, "c1", "m-new")
    source.sweep("m-new")
    assert guard.exists() and own.exists()
