"""The operator's own state and flags: a broken history record never stops the tool, and
--read-only holds for headless commands as it does in the console."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from whimbrel.app.cli import EXIT_USAGE, main
from whimbrel.backends.history import read_records, write_record


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", '{"id": "x", "started_at": "yesterday"}', '{"id": "20261202-1', '"just a string"'],
    ids=["a-list", "a-bad-time", "truncated", "not-an-object"],
)
def test_a_malformed_history_record_is_set_aside_and_the_others_still_read(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_record({"id": "good", "started_at": 1.0, "status": "done"}, tmp_path)
    (tmp_path / "bad.json").write_text(text)
    with caplog.at_level(logging.WARNING):
        records = read_records(tmp_path)
    assert [r["id"] for r in records] == ["good"]
    assert not (tmp_path / "bad.json").exists()
    assert (tmp_path / "bad.json.bad").read_text() == text
    assert "bad.json" in caplog.text and "set aside" in caplog.text


def test_history_and_recover_run_on_past_a_malformed_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHIMBREL_HISTORY", str(tmp_path))
    (tmp_path / "bad.json").write_text("[1, 2]")
    write_record({"id": "good", "started_at": 1.0, "status": "done"}, tmp_path)
    assert main(["history", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["good"]


def test_read_only_refuses_a_headless_migration_before_touching_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No config is read and no node reached: the refusal comes first.
    code = main(["--config", "/nonexistent", "--read-only", "migrate", "a/b", "--to", "c", "--yes"])
    assert code == EXIT_USAGE
    assert "read-only" in capsys.readouterr().err
