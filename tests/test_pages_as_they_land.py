"""A dump's page files followed as CRIU writes them, against what the target holds (this
node's copy of it): the pages' SHA-1s taken while a file grows are those of the whole file,
the changed pages the target holds nowhere go ahead on the stream, and the round they feed
rebuilds the same files on the target."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.node_helpers import load

pagestream, landing = load("pagestream"), load("landing")
source, receiver = load("source"), load("receiver")
CHUNK, PAGE = pagestream.CHUNK, pagestream.PAGE


def _sha1s(data: bytes) -> bytes:
    return b"".join(hashlib.sha1(data[p : p + PAGE]).digest() for p in range(0, len(data), PAGE))


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


def _followed(img: Path, wd: Path, pages: bytes, sink=None):
    """The dump of `pages` written as CRIU writes it, followed: (Landed, OnTarget)."""
    on_target = pagestream.load_index(str(wd))
    following = landing.PagesAsTheyLand(str(img), on_target, sink)
    img.mkdir(exist_ok=True)  # by the dump, once followed
    _write_as_criu_does(img, {"pages-1.img": pages})
    return following.finish(), on_target


def test_digests_taken_while_the_files_grow_are_those_of_the_whole_files(
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
        "pages-3.img": os.urandom(CHUNK),  # none held: nothing to follow
    }
    held = {}
    for name, data in before.items():
        (held_dir / name).write_bytes(data)
        held[name] = pagestream.Held(_sha1s(data), str(held_dir / name))
    on_target = pagestream.OnTarget({}, {}, held)
    following = landing.PagesAsTheyLand(str(img), on_target)  # before the dump makes its dir
    img.mkdir()
    writer = threading.Thread(target=_write_as_criu_does, args=(img, files))
    writer.start()
    writer.join()
    landed = following.finish()
    assert landed.digests == {name: _sha1s(files[name]) for name in before}
    assert (landed.ahead, landed.error) == ({}, None)  # no stream: nothing went ahead


def test_a_held_copy_that_cannot_be_read_is_asked_for_once_and_left_to_the_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = tmp_path / "final"
    img.mkdir()
    gone = tmp_path / "held" / "pages-1.img"
    on_target = pagestream.OnTarget({}, {}, {"pages-1.img": pagestream.Held(b"", str(gone))})
    opened = []
    real_open = landing._open_pair

    def counted(path: str, held_path: str) -> tuple[int, ...]:
        opened.append(held_path)
        return real_open(path, held_path)

    monkeypatch.setattr(landing, "_open_pair", counted)
    following = landing.PagesAsTheyLand(str(img), on_target)
    _write_as_criu_does(img, {"pages-1.img": os.urandom(4 * CHUNK)})  # many passes meanwhile
    assert following.finish().digests == {}
    assert opened == [str(gone)]


def test_a_round_fed_the_followed_digests_sends_what_it_sends_without_them(
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
        landed = _followed(img, wd, changed)[0] if fed else None
        stream, sent = _round(img, wd, changed, landed)
        assert sent == PAGE
        streams.append(stream)
    assert streams[0] == streams[1]


def test_digests_of_the_wrong_length_are_not_trusted(dirs: tuple[Path, Path]) -> None:
    # A dump whose following ended early (or a file it never saw) is compared whole again.
    img, wd = dirs
    pages = os.urandom(4 * CHUNK)
    _round(img, wd, pages)
    changed = _dirtied(pages, 0, 3 * 256)
    landed = landing.Landed({"pages-1.img": b"\x01" * 20}, {}, None)
    _, sent = _round(img, wd, changed, landed)
    assert sent == 2 * PAGE


def _received(raw: bytes, target: dict, into: Path, prev: Path | None, final: bool) -> None:
    """A round's stream received as `recv final` (the page files into the staging dir) or
    `rounds` receive it, built on round `prev`."""
    framed = io.BytesIO()
    stream = source.Striped([framed])
    stream.write(raw)
    stream.end()
    staged = Path(target["upper_dir"]) / ".wb"
    with (
        receiver.Dir(str(into)) as out_dir,
        receiver.Dir(str(staged if final else into)) as pages_dir,
        receiver.Dir(str(prev)) if prev else contextlib.nullcontext() as before,
    ):
        joined = receiver.Joined([io.BytesIO(framed.getvalue())])
        receiver._receive(joined, target, before, out_dir, pages_dir, final)


def test_changed_pages_go_ahead_during_the_dump_and_the_target_patches_its_file_in_place(
    tmp_path: Path,
) -> None:
    wd, img, ckpt, upper = (tmp_path / d for d in ("wd", "img", "ckpt", "upper"))
    for d in (wd, img, ckpt, upper):
        d.mkdir()
    target = {"upper_dir": str(upper)}
    with receiver._staging(target):
        pass
    staged = upper / ".wb"
    pages = os.urandom(8 * CHUNK)
    (img / "pages-1.img").write_bytes(pages)
    raw = io.BytesIO()
    pagestream.send_images(str(img), str(wd), raw, pagestream.load_index(str(wd)))
    (staged / "round-0").mkdir()
    _received(raw.getvalue(), target, staged / "round-0", None, final=False)
    kept = (staged / "round-0" / "pages-1.img").stat().st_ino

    dirtied = [5, 300, 301, 7 * 256 + 255]
    changed = _dirtied(pages, *dirtied)
    final = tmp_path / "final"
    sink = io.BytesIO()  # the stream, written while the dump runs
    landed, on_target = _followed(final, wd, bytes(changed), sink)
    assert landed.error is None
    ahead = sink.getvalue()
    assert len(landed.ahead) == len(dirtied) and len(ahead) < (len(dirtied) + 1) * PAGE
    sent = pagestream.send_images(str(final), None, sink, on_target, landed=landed)
    assert sent.sent_bytes == len(dirtied) * PAGE  # each once: ahead, then taken from there
    assert len(sink.getvalue()) - len(ahead) < PAGE  # after the dump: where pages are, no data
    _received(sink.getvalue(), target, ckpt, staged / "round-0", final=True)
    assert (staged / "pages-1.img").read_bytes() == changed
    assert (staged / "pages-1.img").stat().st_ino == kept  # patched in place, not copied
    assert not (staged / "ahead").exists()  # its pages are in the page file now
    assert not (ckpt / "ahead").exists()  # nor ever where CRIU reads its images


def test_a_changed_page_the_target_holds_elsewhere_does_not_go_ahead(
    dirs: tuple[Path, Path],
) -> None:
    img, wd = dirs
    pages = os.urandom(4 * CHUNK)
    _round(img, wd, pages)
    changed = bytearray(_dirtied(pages, 7))
    changed[9 * PAGE : 10 * PAGE] = pages[2 * PAGE : 3 * PAGE]
    changed[700 * PAGE : 701 * PAGE] = changed[7 * PAGE : 8 * PAGE]  # and one twice
    sink = io.BytesIO()
    landed, _ = _followed(img.parent / "final", wd, bytes(changed), sink)
    assert list(landed.ahead) == [hashlib.sha1(changed[7 * PAGE : 8 * PAGE]).digest()]


def test_a_link_that_breaks_while_pages_go_ahead_fails_the_round(dirs: tuple[Path, Path]) -> None:
    img, wd = dirs
    pages = os.urandom(4 * CHUNK)
    _round(img, wd, pages)

    class Broken(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise BrokenPipeError("link cut")

    final = img.parent / "final"
    landed, on_target = _followed(final, wd, _dirtied(pages, 7), Broken())
    assert isinstance(landed.error, BrokenPipeError)
    with pytest.raises(BrokenPipeError, match="link cut"):
        pagestream.send_images(str(final), None, io.BytesIO(), on_target, landed=landed)


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
