"""The rounds' streams received on the target (standard library only): the pre-copy rounds
into the staging dir, the final round where `docker start --checkpoint` restores from, each
file built on the round before (the format: wire.py).
"""

import contextlib
import io
import json
import os
import shutil
import sys
import threading
import time
from collections import namedtuple

from confined import STAGING, Dir, extract
from decision import abort_target, decide, drop_checkpoint, refuse, serving
from nodelib import out, read_text
from restorework import LazyDaemon, lazy_unavailable, restore_dirs
from restoring import restore
from stripes import joined, read_exact
from targetdir import here, keep_restored, read_target
from wire import (
    AHEAD,
    LENGTH,
    NAME_LEN,
    OP_COPY_CUR,
    OP_COPY_PREV,
    OP_DATA,
    OP_END,
    SIZE,
    SPAN,
    failpoint,
)

# How long a restored, fenced copy waits for the source's "commit" before it records "aborted"
# and goes: the source sends it right behind the stream, so it is there by the restore's end.
COMMIT_WAIT_S = 30.0


def rounds(k, token):
    """The pre-copy rounds, one stream each over the same sessions, answered one by one: the
    sessions and this script start once for all the rounds, not once a round."""
    target = read_target()
    stream = joined(k, token)
    number = 0
    with _staging(target) as staging:
        while stream.more():
            name = f"round-{number}"
            with staging.sub(name, create=True) as out_dir, _latest_round(staging) as prev:
                received, files = _receive(stream, target, prev, out_dir, out_dir, final=False)
            _latest(staging, name)
            out({"round": number, "received_bytes": received, "files": files})
            number += 1


def _staging(target):
    """/.wb in the target container's root file system: the page files of the final round
    are staged there (CRIU opens them from inside the container), and the rounds' (round-N/)
    too, so the final round takes the last round's page files by a rename. From a round kept
    in this script's dir (another mount, even where it is the same file system, as beside
    Docker's data root in the lab) it would be a copy of the whole state inside the downtime:
    1.5 s at 1 GiB. Made root's alone: the images are the container's memory, and the
    container's own users see its root file system. The source's layer may not touch it."""
    with Dir(target["upper_dir"]) as upper:
        return upper.sub(STAGING, create=True)


def _latest(staging, name):
    """Make round `name` the one the next builds on; the one before is no longer needed."""
    previous = read_text(os.path.join(here(), "latest"))
    if previous and previous != name:
        staging.remove_tree(previous)
    with open(os.path.join(here(), "latest"), "w") as f:
        f.write(name)


def recv(which, k, token):
    """The final round's images (and the writable layer, as the file "@layer"), restored where
    `docker start --checkpoint` looks for them. The final round goes on in this session:
    restore, answer, and keep the restored container only if the source's "commit" follows the
    stream (it sends it right behind, so the restore and the word's way here overlap); a lost
    source (EOF) undoes it. Anything failing here records "aborted" and says so: the source,
    its commit perhaps already sent, resumes on that word alone."""
    if which != "final":
        raise ValueError(f"recv {which!r}: pre-copy rounds go over `rounds`")
    target = read_target()
    shutil.rmtree(target["checkpoint_dir"], ignore_errors=True)
    os.makedirs(target["checkpoint_dir"], mode=0o700)
    stream = joined(k, token)
    # Asked for a lazy restore: whether this node can is learnt now, before the freeze.
    lazy_why = lazy_unavailable() if target.get("lazy_restore") else None
    # The source opens this session armed, while the pre-copy rounds still run: the round to
    # build on is the last one, known once the final round's data begins.
    if not stream.more():
        out({"stood_down": True})
        return
    try:
        restored = _received_and_restored(stream, target, lazy_why)
    except (OSError, ValueError, EOFError, RuntimeError, TypeError) as exc:
        # The source's commit may be on its way behind the stream: it resumes on this word.
        out(dict(refuse(target["migration"], target["docker_socket"], target["container"]),
                 error=str(exc)))  # fmt: skip
        sys.exit(1)
    keep_restored(restored)
    out(restored)
    word = _line_within(COMMIT_WAIT_S)
    failpoint(target, "receiver.before-commit-record")
    if word == b"commit":
        verdict = decide(target["migration"], "committed")
    else:
        verdict = abort_target(target["migration"], target["docker_socket"], target["container"])
    if verdict != "committed":
        why = "recorded before the commit came" if word == b"commit" else "no commit in time"
        out({"committed": False, "decision": verdict, "why": f"{verdict}: {why}"})
        return
    t0 = time.monotonic()
    with serving(target["docker_socket"], target["container"], restored["pid"]) as warning:
        resume_s, served_at = time.monotonic() - t0, time.time()
        failpoint(target, "receiver.after-commit")
        said = {"committed": True, "resume_s": resume_s, "served_at": served_at}
        if warning:
            said["warning"] = warning
        out(said)
    drop_checkpoint(target["docker_socket"], target["container"])


def _received_and_restored(stream, target, lazy_why):
    """The final round's images received, then restored (fenced): the restore's answer."""
    work, images = restore_dirs(here())
    daemon = (
        LazyDaemon(work, images, target) if target.get("lazy_restore") and not lazy_why else None
    )
    try:
        with contextlib.ExitStack() as opened:  # (not parenthesised withs: nodes may run 3.9)
            out_dir = opened.enter_context(Dir(target["checkpoint_dir"]))
            staging = opened.enter_context(_staging(target))
            prev = opened.enter_context(_latest_round(staging))
            received, files = _receive(
                stream,
                target,
                prev,
                out_dir,
                staging,
                final=True,
                before_pages=daemon.start if daemon else None,
            )
    except BaseException:
        if daemon:
            daemon.kill()  # no restore will come for it
        raise
    if "corrupt-image" in target.get("failpoints", {}):
        with Dir(target["checkpoint_dir"]) as ckpt, ckpt.open("inventory.img", os.O_RDWR) as f:
            f.write(b"\xff" * 16)
    restored = restore(target, work, daemon)
    if lazy_why:
        restored["lazy_unavailable"] = lazy_why
    return dict(restored, received_bytes=received, files=files)


def _line_within(seconds):
    """The session's next line, or None when none comes within `seconds` (a source gone
    quiet, not only one gone: a partition can hold a session open without a word)."""
    box = []
    reader = threading.Thread(
        target=lambda: box.append(sys.stdin.buffer.readline().strip()), daemon=True
    )
    reader.start()
    reader.join(seconds)
    return box[0] if box else None


def _receive(stream, target, prev, out_dir, pages_dir, final, before_pages=None):
    """One round's stream into out_dir (page files into pages_dir), built on round `prev`
    (each a Dir; prev may be None); returns (bytes received, files). `before_pages` is called
    once every image but the page files (which come after the others) has landed."""
    received = files = 0
    while True:
        (n,) = LENGTH.unpack(read_exact(stream, 4))
        if n == 0:
            break
        header = json.loads(read_exact(stream, n))
        name = header["name"]
        if name == "@layer":
            received += _receive_tree(stream, target["upper_dir"], reserved=STAGING)
            continue
        if name.startswith("@volume:"):
            volume = name.split(":", 1)[1]
            if volume not in target["volumes"]:
                raise ValueError(f"volume {volume!r} is not the target container's")
            received += _receive_tree(stream, target["volumes"][volume])
            continue
        _file_name(name)
        is_pages = name.startswith("pages-")
        if is_pages and before_pages:
            before_pages()
            before_pages = None
        into = pages_dir if is_pages or name == AHEAD else out_dir
        if header.get("inplace") and prev is not None:
            received += _patch_file(stream, prev, into, name, pages_dir)
        else:
            with into.create(name) as f:
                received += _receive_file(stream, f, prev, pages_dir, out_dir)
        if is_pages and final:
            # CRIU opens page files inside the container's mount namespace: a link to a path
            # that resolves there, not on the host.
            out_dir.symlink("/" + STAGING + "/" + name, name)
        files += name != AHEAD
    stream.finish()
    with contextlib.suppress(FileNotFoundError):
        pages_dir.remove_tree(AHEAD)  # its pages are in the page files now
    return received, files


def _file_name(name):
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"bad file name {name[:80]!r}")
    return name


def _chunks(stream):
    """The data of one file up to its OP_END, chunk by chunk, and each copy op as its Ref:
    (op, bytes or Ref)."""
    while True:
        op = read_exact(stream, 1)
        if op == OP_END:
            return
        if op == OP_DATA:
            (length,) = SIZE.unpack(read_exact(stream, 8))
            while length:
                chunk = stream.read(min(length, 1 << 20))
                if not chunk:
                    raise EOFError("stream ended in data")
                length -= len(chunk)
                yield op, chunk
        elif op in (OP_COPY_PREV, OP_COPY_CUR):
            yield op, _ref(stream)
        else:
            raise ValueError(f"bad op {op!r}")


def _receive_file(stream, f, prev, pages_dir, out_dir):
    received = 0
    for op, item in _chunks(stream):
        if op == OP_DATA:
            f.write(item)
            received += len(item)
        elif op == OP_COPY_PREV:
            if prev is None:
                raise ValueError("copy from a previous round that is not here")
            _copy(prev, *item, f)
        else:
            f.flush()
            _copy(_this_rounds(item.name, pages_dir, out_dir), *item, f)
    return received


def _this_rounds(name, pages_dir, out_dir):
    """Where a file of this round is: page files and AHEAD with the pages, the rest not."""
    return pages_dir if name.startswith("pages-") or name == AHEAD else out_dir


def _patch_file(stream, prev, into, name, pages_dir):
    """Last round's file becomes this round's, patched where pages changed (the source only
    asks for this when every page it keeps is at the same offset, every other page being
    data or sent ahead)."""
    prev.move(name, into)
    received = 0
    with into.open(name, os.O_RDWR) as f:
        for op, item in _chunks(stream):
            if op == OP_DATA:
                f.write(item)
                received += len(item)
            elif op == OP_COPY_PREV and item.name == name and item.offset == f.tell():
                f.seek(item.length, os.SEEK_CUR)
            elif op == OP_COPY_CUR and item.name == AHEAD:
                _copy(pages_dir, *item, f)
            else:
                raise ValueError("not an in-place patch")
        f.truncate()
    return received


def _receive_tree(stream, root, reserved=None):
    """A file tree (the writable layer, a volume) comes whole each time: clear what an earlier
    round left (but `reserved`, the staging dir), so files deleted meanwhile go here too."""
    with Dir(root) as tree:
        for entry in os.listdir(tree.fd):
            if entry != reserved:
                tree.remove_tree(entry)
        reader = ChunkReader(_chunks(stream))
        extract(io.BufferedReader(reader, 1 << 20), tree, reserved)
        return reader.received


def _latest_round(staging):
    """The round the next one builds on (a Dir), or a stand-in for none."""
    name = read_text(os.path.join(here(), "latest"))
    return staging.sub(name) if name else contextlib.nullcontext()


# Where the target finds bytes a copy op asks for: `length` bytes at `offset` of file `name`.
Ref = namedtuple("Ref", "name offset length")


def _ref(stream):
    (n,) = NAME_LEN.unpack(read_exact(stream, 2))
    name = _file_name(read_exact(stream, n).decode())
    offset, length = SPAN.unpack(read_exact(stream, 16))
    return Ref(name, offset, length)


def _copy(src, name, offset, length, dst):
    with src.open(name) as f:
        f.seek(offset)
        while length:
            chunk = f.read(min(length, 1 << 22))
            if not chunk:
                raise EOFError("short copy from " + name)
            dst.write(chunk)
            length -= len(chunk)


class ChunkReader(io.RawIOBase):
    """A file tree's D chunks as a readable stream (for tarfile), counting what came."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.view = memoryview(b"")
        self.received = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.view:
            op, chunk = next(self.chunks, (None, None))
            if op is None:
                return 0
            if op != OP_DATA:
                raise ValueError("a file tree is data only")
            self.view = memoryview(chunk)
            self.received += len(chunk)
        n = min(len(buffer), len(self.view))
        buffer[:n] = self.view[:n]
        self.view = self.view[n:]
        return n
