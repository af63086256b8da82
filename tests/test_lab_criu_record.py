from pathlib import Path

import pytest

from whimbrel.backends.lab import criu_cache
from whimbrel.backends.lab.criu_cache import drop_criu_record, keep_criu_record


def test_where_run_is_a_tmpfs_crius_own_record_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(criu_cache, "_on_tmpfs", lambda path: True)
    kdat, kept = tmp_path / "criu.kdat", tmp_path / "kept"
    kdat.write_bytes(b"CRIU's own")
    assert keep_criu_record(kept, kdat) is None
    drop_criu_record(kept)
    assert kdat.read_bytes() == b"CRIU's own" and not kept.exists()


def test_down_removes_only_the_record_the_lab_put_there(tmp_path: Path) -> None:
    kdat, kept = tmp_path / "criu.kdat", tmp_path / "kept"
    kdat.write_bytes(b"record")
    kept.write_text(str(kdat))
    drop_criu_record(kept)
    assert not kdat.exists() and not kept.exists()
    drop_criu_record(kept)  # twice: nothing left to do
