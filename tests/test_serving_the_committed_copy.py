"""The committed copy serves (remote/decision.py): the staged page files' names are gone before
its tasks resume, but their space is freed only once the caller has answered (freeing a 1 GiB
file cost an eager hand-over's downtime 0.16 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.node_helpers import load

decision = load("decision")


def test_staged_files_are_gone_before_the_tasks_resume_and_freed_after_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = tmp_path / ".wb"
    (staged / "round-3").mkdir(parents=True)
    (staged / "pages-1.img").write_bytes(b"p" * 8192)
    (staged / "round-3" / "pages-2.img").write_bytes(b"q" * 4096)
    os.mkfifo(staged / "planted-fifo")  # opened, it would block: never opened
    (staged / "planted-link").symlink_to("/etc/shadow")  # never followed
    monkeypatch.setattr(decision, "staged_dir", lambda pid: str(staged))
    at_resume: list[bool] = []

    def resume_tasks(pid: int, cid: str) -> None:
        at_resume.append(staged.exists())

    monkeypatch.setattr(decision, "resume_tasks", resume_tasks)
    opened: list[int] = []
    real_opened = decision._opened_files

    def opened_files(top: str) -> list[int]:
        opened.extend(real_opened(top))
        return opened

    monkeypatch.setattr(decision, "_opened_files", opened_files)

    with decision.serving("/run/docker.sock", "c", pid=42) as warning:
        assert warning is None and at_resume == [False]
        assert sorted(os.fstat(fd).st_size for fd in opened) == [4096, 8192]  # still held
        assert all(os.fstat(fd).st_nlink == 0 for fd in opened)
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed once the caller answered
