"""The final dump's page files compared with the held ones (what the target holds) as CRIU
writes them: the comparisons taken while a file grows are those of the whole file, and the
round they feed sends the same stream."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.node_helpers import load

pagestream = load("pagestream")
CHUNK, PAGE = pagestream.CHUNK, pagestream.PAGE


def _same(data: bytes, held: bytes) -> bytes:
    return bytes(
        data[c : c + CHUNK] == held[c : c + min(CHUNK, len(data) - c)]
        for c in range(0, len(data), CHUNK)
    )


def _write_as_criu_does(img: Path, files: dict[str, bytes]) -> None:
    """Each page file appended to in uneven pieces, one file after another, with pauses."""
    pick = random.Random(7)
    for name, data in files.items():
        with open(img / name, "wb") as f:
            at = 0
            while at < len(data):
                piece = pick.randrange(1, 3 * CHUNK)
                f.write(data[at : at + piece])
                f.flush()
                at += piece
                time.sleep(0.002)


def _dirtied(data: bytes, *pages: int) -> bytes:
    changed = bytearray(data)
    for page in pages:
        changed[page * PAGE] ^= 0xFF
    return bytes(changed)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A dump's image dir and the source's work dir."""
    img, wd = tmp_path / "img", tmp_path / "wd"
    img.mkdir()
    wd.mkdir()
    return img, wd


def _round(img: Path, wd: Path, pages: bytes, landed=None) -> tuple[bytes, int]:
    (img / "pages-1.img").write_bytes(pages)
    out = io.BytesIO()
    on_target = pagestream.load_index(str(wd))
    sent = pagestream.send_images(str(img), str(wd), out, on_target, landed=landed)
    return out.getvalue(), sent.sent_bytes


def test_comparisons_taken_while_the_files_grow_are_those_of_the_whole_files(
    tmp_path: Path,
) -> None:
    img, held_dir = tmp_path / "final", tmp_path / "held"
    held_dir.mkdir()
    before = {
        "pages-1.img": os.urandom(9 * CHUNK + 5 * PAGE),  # a short last chunk
        "pages-2.img": os.urandom(3 * CHUNK),
    }
    files = {
        "pages-1.img": _dirtied(before["pages-1.img"], 3, 4 * 256 + 9, 9 * 256 + 4),
        "pages-2.img": before["pages-2.img"] + os.urandom(CHUNK),  # grew by a chunk
        "pages-3.img": os.urandom(CHUNK),  # none held: nothing to compare
    }
    held = {}
    for name, data in before.items():
        (held_dir / name).write_bytes(data)
        held[name] = pagestream.Held(b"", str(held_dir / name))
    following = pagestream.ChunksAsTheyLand(str(img), held)  # before the dump makes its dir
    img.mkdir()
    writer = threading.Thread(target=_write_as_criu_does, args=(img, files))
    writer.start()
    writer.join()
    landed = following.finish()
    assert landed == {name: _same(files[name], data) for name, data in before.items()}
    assert landed["pages-1.img"] == bytes([0, 1, 1, 1, 0, 1, 1, 1, 1, 0])
    assert landed["pages-2.img"] == bytes([1, 1, 1, 0])


def test_a_held_copy_that_cannot_be_read_is_asked_for_once_and_left_to_the_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = tmp_path / "final"
    img.mkdir()
    gone = tmp_path / "held" / "pages-1.img"
    held = {"pages-1.img": pagestream.Held(b"", str(gone))}
    opened = []
    real_open = pagestream._open_pair

    def counted(path: str, held_path: str) -> tuple[int, ...]:
        opened.append(held_path)
        return real_open(path, held_path)

    monkeypatch.setattr(pagestream, "_open_pair", counted)
    following = pagestream.ChunksAsTheyLand(str(img), held)
    _write_as_criu_does(img, {"pages-1.img": os.urandom(4 * CHUNK)})  # many passes meanwhile
    landed = following.finish()
    assert landed == {}
    assert opened == [str(gone)]


def test_a_round_fed_the_landed_comparisons_sends_what_it_sends_without_them(
    tmp_path: Path,
) -> None:
    img = tmp_path / "img"
    img.mkdir()
    pages = os.urandom(6 * CHUNK)
    changed = _dirtied(pages, 2 * 256 + 3)  # one page of one chunk dirtied
    streams = []
    for fed in (False, True):
        wd = tmp_path / f"wd-{fed}"
        wd.mkdir()
        _round(img, wd, pages)
        landed = {"pages-1.img": _same(changed, pages)} if fed else None
        stream, sent = _round(img, wd, changed, landed)
        assert sent == PAGE
        streams.append(stream)
    assert streams[0] == streams[1]


def test_comparisons_of_the_wrong_length_are_not_trusted(dirs: tuple[Path, Path]) -> None:
    # A dump whose following ended early (or a file it never saw) is compared whole again.
    img, wd = dirs
    pages = os.urandom(4 * CHUNK)
    _round(img, wd, pages)
    changed = _dirtied(pages, 0, 3 * 256)
    _, sent = _round(img, wd, changed, landed={"pages-1.img": b"\x01"})
    assert sent == 2 * PAGE


def test_a_round_keeps_the_page_files_the_target_holds_and_only_those(
    dirs: tuple[Path, Path],
) -> None:
    img, wd = dirs
    pages = os.urandom(2 * CHUNK)
    (img / "pages-2.img").write_bytes(os.urandom(CHUNK))
    _round(img, wd, pages)
    assert sorted(p.name for p in (wd / "held").iterdir()) == ["pages-1.img", "pages-2.img"]
    assert (wd / "held" / "pages-1.img").read_bytes() == pages
    assert not list(img.glob("pages-*"))  # moved, not copied
    _round(img, wd, pages)  # pages-2.img is gone from the dump: the target no longer holds it
    assert [p.name for p in (wd / "held").iterdir()] == ["pages-1.img"]


def test_the_final_round_keeps_nothing_for_a_round_that_will_not_come(
    dirs: tuple[Path, Path],
) -> None:
    img, wd = dirs
    pages = os.urandom(2 * CHUNK)
    _round(img, wd, pages)
    kept = {p.name: p.stat().st_mtime_ns for p in wd.rglob("*")}
    (img / "pages-1.img").write_bytes(_dirtied(pages, 5))
    on_target = pagestream.load_index(str(wd))
    sent = pagestream.send_images(str(img), None, io.BytesIO(), on_target)
    assert sent.sent_bytes == PAGE
    assert {p.name: p.stat().st_mtime_ns for p in wd.rglob("*")} == kept
    assert (img / "pages-1.img").exists()  # goes with the final dump's dir, after the commit


def test_a_held_copy_that_is_gone_has_every_page_hashed_again(dirs: tuple[Path, Path]) -> None:
    img, wd = dirs
    pages = os.urandom(3 * CHUNK)
    _round(img, wd, pages)
    (wd / "held" / "pages-1.img").unlink()
    _, sent = _round(img, wd, _dirtied(pages, 300))
    assert sent == PAGE


def test_a_new_page_file_yields_its_first_run_before_the_rest_is_hashed() -> None:
    data = random.Random(3).randbytes(4 * pagestream.DATA_RUN)
    diff = pagestream.PageDiff("pages-1.img", memoryview(data), {})
    runs = iter(diff)
    first = next(runs)
    assert (first.op, first.start, first.length) == (pagestream.OP_DATA, 0, pagestream.DATA_RUN)
    assert diff.digests is None  # the file's own digests come once all of it is hashed
    rest = list(runs)
    assert sum(r.length for r in rest) == len(data) - first.length
    assert diff.digests == b"".join(
        hashlib.sha1(data[p : p + PAGE]).digest() for p in range(0, len(data), PAGE)
    )


def test_runs_made_ahead_in_a_thread_come_in_order_and_carry_its_error() -> None:
    def made():
        yield from range(100)
        raise ValueError("page file gone")

    taken = []
    with pytest.raises(ValueError, match="page file gone"):
        for item in pagestream._ahead(made(), depth=4):
            taken.append(item)
    assert taken == list(range(100))


def test_a_caller_that_stops_early_stops_the_thread_making_ahead() -> None:
    made = threading.Event()

    def endless():
        while True:
            made.set()
            yield b"run"

    before = threading.active_count()
    ahead = pagestream._ahead(endless(), depth=2)
    assert next(ahead) == b"run"
    ahead.close()  # a broken link: send_images gives up on the file
    assert made.is_set() and threading.active_count() == before
