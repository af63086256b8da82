"""Striped streams: the source deals a round's bytes over several SSH sessions (one channel's
window caps a stream at about 1.2 MB per round trip) and the receiver puts them back in order.

The node helpers are standalone scripts, so they are loaded from their paths here, and run as
`python3` processes, the way a node runs them, with a local command standing in for ssh.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.node_helpers import load, write
from whimbrel.backends.channel import MAX_STRIPES, NodeLink, stripes_for
from whimbrel.backends.config import Node

ROOT = Path(__file__).parents[1]
REMOTE = ROOT / "backends" / "remote"


source, receiver = load("source"), load("receiver")
BLOCK = source.BLOCK


def _deal(writes: list[bytes], k: int, after: bytes = b"") -> list[io.BytesIO]:
    sinks = [io.BytesIO() for _ in range(k)]
    stream = source.Striped(sinks)
    for data in writes:
        stream.write(data)
    stream.end()
    sinks[0].write(after)
    return [io.BytesIO(s.getvalue()) for s in sinks]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_joined_stripes_give_back_the_stream_byte_for_byte(k: int) -> None:
    rng = __import__("random").Random(k)
    writes = [rng.randbytes(n) for n in (1, 7, BLOCK - 3, 2 * BLOCK + 5, 0, 4096, 3 * BLOCK)]
    writes.append(memoryview(rng.randbytes(BLOCK + 1)))  # page runs come as memoryviews
    stripes = _deal(writes, k)
    joined = receiver.Joined(stripes)
    expected = b"".join(bytes(w) for w in writes)
    got = bytearray()
    # The receiver reads in every size: frame headers, 8-byte lengths, 1 MiB chunks.
    for n in (1, 4, 8, 100, BLOCK, 3, 2 * BLOCK):
        got += joined.read(n)
    while chunk := joined.read(1 << 16):
        got += chunk
    assert bytes(got) == expected
    assert joined.read(10) == b""


def test_every_stripe_carries_a_share_of_a_large_stream() -> None:
    stripes = _deal([bytes(6 * BLOCK)], 3)
    sizes = [len(s.getvalue()) for s in stripes]
    assert all(size >= 2 * BLOCK for size in sizes)


def test_what_follows_the_stream_on_the_first_stripe_is_left_for_the_session() -> None:
    # The final round's session reads "commit" on its stdin (stripe 0) after the stream.
    stripes = _deal([b"x" * (BLOCK + 10)], 2, after=b"commit\n")
    joined = receiver.Joined(stripes)
    assert joined.read(2 * BLOCK) == b"x" * (BLOCK + 10)
    assert stripes[0].readline() == b"commit\n"


@pytest.mark.parametrize("k", [1, 2, 3])
def test_after_the_stream_and_its_end_frame_the_first_stripe_reads_commit(k: int) -> None:
    # Whichever stripe the end frame travels on, finish() takes it, so a receiver that read
    # exactly the stream's content then reads its stdin's next line cleanly.
    for frames in range(1, 4):
        content = b"y" * (frames * BLOCK - 5)
        stripes = _deal([content], k, after=b"commit\n")
        joined = receiver.Joined(stripes)
        assert joined.read(len(content)) == content
        joined.finish()
        assert stripes[0].readline() == b"commit\n"


def test_data_after_what_the_receiver_expected_is_an_error() -> None:
    joined = receiver.Joined(_deal([b"abc"], 2))
    assert joined.read(2) == b"ab"
    with pytest.raises(ValueError, match="data after the end"):
        joined.finish()


def test_a_stripe_that_ends_early_is_an_error_naming_it() -> None:
    stripes = _deal([bytes(4 * BLOCK)], 2)
    stripes[1] = io.BytesIO(stripes[1].getvalue()[: BLOCK // 2])
    joined = receiver.Joined(stripes)
    with pytest.raises(EOFError, match="stripe 1 ended early"):
        while joined.read(BLOCK):
            pass


def test_an_oversized_frame_is_refused() -> None:
    joined = receiver.Joined([io.BytesIO((1 << 30).to_bytes(4, "big"))])
    with pytest.raises(ValueError, match="frame of"):
        joined.read(1)


def test_a_hostile_stream_token_is_refused() -> None:
    with pytest.raises(ValueError, match="bad stream token"):
        receiver._stripe_socket("../../etc/x")


def test_stripes_grow_with_the_round_trip_and_are_capped() -> None:
    # The benchmark's RTTs sit inside their steps, so a probe's few percent do not change
    # the count.
    assert [stripes_for(ms / 1000) for ms in (5, 20, 50, 100, 200)] == [1, 1, 3, 5, 10]
    assert stripes_for(0.104) == stripes_for(0.096) == 5
    assert stripes_for(0.210) == stripes_for(0.190) == 10
    assert stripes_for(5.0) == MAX_STRIPES


def test_a_stripe_past_the_first_wave_waits_for_an_earlier_master(tmp_path: Path) -> None:
    transfer = load("transfer")
    socket_path = tmp_path / "master-0"
    argv = ["ssh", "-o", f"ControlPath={socket_path}", "node"]
    threading.Timer(0.2, socket_path.touch).start()
    started = time.monotonic()
    transfer._await_master(argv, timeout=5)
    assert socket_path.exists() and 0.15 < time.monotonic() - started < 2


def test_a_master_that_never_comes_delays_the_next_stripe_only_until_the_timeout(
    tmp_path: Path,
) -> None:
    transfer = load("transfer")
    started = time.monotonic()
    transfer._await_master(["ssh", "-o", f"ControlPath={tmp_path / 'never'}"], timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2


def _local_link(here: Path) -> list[str]:
    """A command line that runs the receiver the way sshd's forced command does: the action
    (ssh's last argument) in SSH_ORIGINAL_COMMAND."""
    launcher = (
        "import os, sys; os.environ['SSH_ORIGINAL_COMMAND'] = sys.argv[1]; "
        f"os.execv(sys.executable, [sys.executable, {str(here / 'receiver.py')!r}])"
    )
    return [sys.executable, "-c", launcher]


@pytest.mark.parametrize("k", [1, 3])
def test_probe_send_moves_every_byte_over_k_receiver_sessions(tmp_path: Path, k: int) -> None:
    write("receiver", tmp_path)
    links = [_local_link(tmp_path)] * k
    n_bytes = 5 * BLOCK + 123
    source_py = write("source", tmp_path)
    done = subprocess.run(
        [sys.executable, str(source_py), "probe-send", str(n_bytes), json.dumps(links)],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert answer["bytes"] == n_bytes
    assert answer["stripes"] == k
    assert not list(tmp_path.glob("stripes-*.sock"))  # the rendezvous socket is gone


def test_each_stripe_has_its_own_connection_kept_across_rounds() -> None:
    node = Node(name="b", cluster="y", host="10.0.0.2")
    link = NodeLink("id", node, node, "/src", "/dst", "root").for_rtt(0.2)
    assert link.stripes == 10
    paths = [next(a for a in argv if a.startswith("ControlPath=")) for argv in link.argvs()]
    assert paths[:2] == ["ControlPath=/src/master", "ControlPath=/src/master-1"]
    assert len(set(paths)) == 10


@pytest.mark.parametrize("k", [1, 3])
def test_rounds_share_one_set_of_sessions_and_each_arrives_whole(
    tmp_path: Path, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pre-copy rounds go one after another over the same sessions: each round's images
    # arrive byte for byte, each answered in turn, and a later round sends only what changed.
    here, wd, img = tmp_path / "target", tmp_path / "wd", tmp_path / "img"
    for d in (here, wd, img, tmp_path / "upper"):
        d.mkdir()
    write("receiver", here)
    (here / "target.json").write_text(json.dumps({"upper_dir": str(tmp_path / "upper")}))
    pages = bytearray(os.urandom(64 * source.PAGE))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    transfer = source.Transfer([_local_link(here)] * k, "rounds")
    sent = []
    try:
        for number in range(3):
            pages[number * source.PAGE] ^= 0xFF  # a page dirtied between rounds
            (img / "pages-1.img").write_bytes(pages)
            (img / "inventory.img").write_bytes(b"inventory %d" % number)
            on_target = source.load_index(str(wd))
            images, reply = transfer.send(
                lambda s: source.send_images(str(img), str(wd), s, on_target)  # noqa: B023
            )
            sent.append(images.sent_bytes)
            assert 0 <= images.diff_s < 5  # the page hashing's own clock, inside the round
            assert reply["round"] == number
            # Received where the restore reads the page files: the container's /.wb.
            staged = tmp_path / "upper" / ".wb"
            got = staged / f"round-{number}"
            assert (got / "pages-1.img").read_bytes() == pages
            assert (got / "inventory.img").read_bytes() == b"inventory %d" % number
            assert sorted(p.name for p in staged.glob("round-*")) == [f"round-{number}"]
            assert staged.stat().st_mode & 0o777 == 0o700  # the memory's images: root's alone
        assert transfer.close() is None
        assert transfer.session.wait(timeout=30) == 0
    finally:
        transfer.close(timeout=5)
    assert sent[0] >= len(pages)
    assert sent[1] < 2 * source.PAGE and sent[2] < 2 * source.PAGE
    assert not list(here.glob("stripes-*.sock"))


def test_the_final_round_takes_the_last_rounds_page_file_by_a_rename(tmp_path: Path) -> None:
    # The final round builds on the last pre-copy round where the restore reads it: the page
    # file it keeps is renamed into place, not copied (a copy of the whole state in downtime).
    wd, img, ckpt = tmp_path / "wd", tmp_path / "img", tmp_path / "checkpoint"
    for d in (wd, img, ckpt, tmp_path / "upper"):
        d.mkdir()
    target = {"upper_dir": str(tmp_path / "upper")}
    with receiver._staging(target):  # made as the receiver makes it
        pass
    staged = tmp_path / "upper" / ".wb"
    pages = bytearray(os.urandom(512 * source.PAGE))

    def send(out_dir: Path, prev: Path | None, final: bool) -> None:
        (img / "pages-1.img").write_bytes(pages)
        raw = io.BytesIO()
        source.send_images(str(img), str(wd), raw, source.load_index(str(wd)))
        out_dir.mkdir(parents=True, exist_ok=True)
        joined = receiver.Joined(_deal([raw.getvalue()], 1))
        # As `recv final` and `rounds` give them: the final round's pages go to the staging.
        with (
            receiver.Dir(str(out_dir)) as into,
            receiver.Dir(str(staged if final else out_dir)) as pages_dir,
            receiver.Dir(str(prev)) if prev else contextlib.nullcontext() as before,
        ):
            receiver._receive(joined, target, before, into, pages_dir, final)

    send(staged / "round-0", None, final=False)
    kept = (staged / "round-0" / "pages-1.img").stat().st_ino
    pages[7 * source.PAGE] ^= 0xFF
    send(ckpt, staged / "round-0", final=True)
    assert (staged / "pages-1.img").read_bytes() == pages
    assert (staged / "pages-1.img").stat().st_ino == kept
    assert os.readlink(ckpt / "pages-1.img") == "/.wb/pages-1.img"
