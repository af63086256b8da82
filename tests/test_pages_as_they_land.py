"""The final dump's page files hashed as CRIU writes them: the chunk digests taken while a
file grows are those of the whole file, and the round they feed sends the same stream."""

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


def _chunk_digests(data: bytes) -> bytes:
    return b"".join(hashlib.sha1(data[c : c + CHUNK]).digest() for c in range(0, len(data), CHUNK))


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


def test_digests_taken_while_the_files_grow_are_those_of_the_whole_files(tmp_path: Path) -> None:
    img = tmp_path / "final"
    files = {
        "pages-1.img": os.urandom(9 * CHUNK + 5 * PAGE),  # a short last chunk
        "pages-2.img": os.urandom(3 * CHUNK),
    }
    following = pagestream.ChunksAsTheyLand(str(img))  # before the dump makes its dir
    img.mkdir()
    writer = threading.Thread(target=_write_as_criu_does, args=(img, files))
    writer.start()
    writer.join()
    landed = following.finish()
    assert landed == {name: _chunk_digests(data) for name, data in files.items()}


def test_a_round_fed_the_landed_digests_sends_what_it_sends_without_them(tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.mkdir()
    pages = bytearray(os.urandom(6 * CHUNK))
    streams = []
    for landed in (False, True):
        wd = tmp_path / f"wd-{landed}"
        wd.mkdir()
        (img / "pages-1.img").write_bytes(pages)
        pagestream.send_images(str(img), str(wd), io.BytesIO(), pagestream.load_index(str(wd)))
        changed = bytearray(pages)
        changed[2 * CHUNK + 3 * PAGE] ^= 0xFF  # one page of one chunk dirtied
        (img / "pages-1.img").write_bytes(changed)
        digests = {"pages-1.img": _chunk_digests(bytes(changed))} if landed else None
        out = io.BytesIO()
        sent = pagestream.send_images(
            str(img), str(wd), out, pagestream.load_index(str(wd)), landed=digests
        )
        assert sent.sent_bytes == PAGE
        streams.append(out.getvalue())
    assert streams[0] == streams[1]


def test_digests_of_the_wrong_length_are_not_trusted(tmp_path: Path) -> None:
    # A dump whose following ended early (or a file it never saw) is hashed whole again.
    img, wd = tmp_path / "img", tmp_path / "wd"
    img.mkdir()
    wd.mkdir()
    pages = os.urandom(4 * CHUNK)
    (img / "pages-1.img").write_bytes(pages)
    out = io.BytesIO()
    short = {"pages-1.img": _chunk_digests(pages)[:20]}
    pagestream.send_images(str(img), str(wd), out, pagestream.load_index(str(wd)), landed=short)
    assert (wd / "chunks-pages-1.img").read_bytes() == _chunk_digests(pages)


def test_a_new_page_file_yields_its_first_run_before_the_rest_is_hashed() -> None:
    data = random.Random(3).randbytes(4 * pagestream.DATA_RUN)
    diff = pagestream.PageDiff("pages-1.img", memoryview(data), {}, None)
    runs = iter(diff)
    first = next(runs)
    assert (first.op, first.start, first.length) == (pagestream.OP_DATA, 0, pagestream.DATA_RUN)
    assert diff.digests is None  # the file's own digests come once all of it is hashed
    rest = list(runs)
    assert sum(r.length for r in rest) == len(data) - first.length
    assert diff.digests.chunks == _chunk_digests(data)


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
