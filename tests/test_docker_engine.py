"""The operator's forwarded Docker sockets live in private dirs of its own, and those a killed
whimbrel left are swept when the next one is made. (The SDK over SSH itself: every lab
migration's preflight.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from whimbrel.backends.docker_engine import _socket_dir


def test_socket_dirs_are_private_and_a_dead_whimbrels_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    base = tmp_path / "whimbrel" / "sockets"
    base.mkdir(parents=True)
    dead = base / "docker-999999999-abc"  # no such pid
    dead.mkdir()
    live = base / f"docker-{os.getpid()}-def"
    live.mkdir()

    made = Path(_socket_dir())

    assert made.parent == base and made.name.startswith(f"docker-{os.getpid()}-")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert not dead.exists() and live.exists()
