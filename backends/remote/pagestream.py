"""A round's CRIU images as a stream to the target (standard library only): see wire.py for
the format.

Images go as a stream of files; for CRIU's pages-*.img, page by page (4 KiB): a page the
target already holds from the previous round is sent as a copy instruction, so each round
sends only what changed. Whether a page is where it was is a byte compare with this node's
copy of the file the target holds, made as the dump writes it (landing.py); a page found
elsewhere is found by its SHA-1 (for identity against accident here: a forged collision could
only corrupt the forger's own memory).
"""

import hashlib
import json
import mmap
import os
import queue
import subprocess
import threading
import time
from collections import namedtuple

from landing import DIGEST, page_digests
from wire import (
    AHEAD,
    CHUNK,
    LENGTH,
    NAME_LEN,
    OP_COPY_CUR,
    OP_COPY_PREV,
    OP_DATA,
    OP_END,
    PAGE,
    SIZE,
    SPAN,
    file_header,
)

# What the target holds from the previous round (load_index): `index` {page SHA-1: (file name,
# offset)}, `files` {file name: its SHA-1, or "pages"}, `held` {page file name: Held}.
OnTarget = namedtuple("OnTarget", "index files held")
# A page file the target holds: its pages' SHA-1s, and the path of this node's copy of it (the
# same bytes: the stream rebuilt it there), which the next round's file is compared with.
Held = namedtuple("Held", "digests path")
# Where a work dir keeps the page files the target holds (the last round's).
HELD = "held"
# Pages as written (_flush): new data (OP_DATA), or `length` bytes the target finds at `offset`
# of the file `src` (OP_COPY_PREV: last round's, OP_COPY_CUR: this round's); `start` is where
# they go in this file.
Run = namedtuple("Run", "op src offset length start")
# A page file of this round: its (mapped) bytes, its Runs and its pages' SHA-1s.
PageFile = namedtuple("PageFile", "data runs digests")
# A run of new pages is cut at this length, so a file of them streams as it is hashed.
DATA_RUN = 4 << 20
# What a round's images came to: the state's bytes, the bytes that crossed the link, and the
# seconds spent hashing pages against what the target holds.
Sent = namedtuple("Sent", "state_bytes sent_bytes diff_s")


def load_index(wd):
    """What the target holds from the previous round, as the work dir `wd` recorded it."""
    index, held = {}, {}
    try:
        with open(os.path.join(wd, "index.json")) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return OnTarget(index, {}, held)
    for name in names:
        if name.startswith("pages-"):
            with open(os.path.join(wd, "index-" + name), "rb") as f:
                digests = f.read()
            held[name] = Held(digests, os.path.join(wd, HELD, name))
            for i in range(0, len(digests), 20):
                index.setdefault(digests[i : i + 20], (name, (i // 20) * PAGE))
    return OnTarget(index, names, held)


def send_images(img_dir, wd, stream, on_target, trees=(), landed=None):
    """Write the round's images, then the file trees (`[(entry, dir)]`: the writable layer as
    "@layer", each named volume as "@volume:NAME") to `stream`; returns Sent. `on_target` is
    load_index()'s OnTarget; `landed` landing.Landed, when the dump was followed (its AHEAD
    file, if any, already on `stream`). The page files then become the held ones of the work
    dir `wd` (moved out of `img_dir`); the final round, which no round follows, passes None
    (freeing last round's files would cost its downtime ~0.2 s a GiB)."""
    digests, ahead = (landed.digests, landed.ahead) if landed else ({}, {})
    if landed and landed.error:
        raise landed.error  # the stream broke while the pages went ahead
    files, mapped, state, sent = _send_small_files(img_dir, stream, on_target.files)
    stream.flush()  # at once: a lazy restore's daemon starts on them while the pages come
    pages, streamed = _stream_new_pages(mapped, stream, on_target)
    held, diff_s = _diff_held_pages(img_dir, mapped, on_target, digests, ahead)
    pages.update(held)
    sent += streamed + _send_held_pages(held, pages, stream)
    for entry, directory in trees:
        stream.write(file_header(name=entry))
        sent += tar_stream(directory, stream)
        stream.write(OP_END)
    stream.write(LENGTH.pack(0))
    stream.flush()
    if wd is not None:
        _keep_index(wd, img_dir, files, pages)
    return Sent(state, sent + len(ahead) * PAGE, diff_s)


def _send_small_files(img_dir, stream, prev_files):
    """The images but the page files, whole or as a copy of last round's; the page files
    mapped (no copy of the whole state in this process). Returns ({name: SHA-1, or "pages"},
    {page file name: its map}, the state's bytes, the bytes sent)."""
    files, mapped = {}, {}
    state = sent = 0
    for name in sorted(os.listdir(img_dir)):
        path = os.path.join(img_dir, name)
        if not os.path.isfile(path) or name.endswith(".log"):
            continue
        with open(path, "rb") as f:
            if name.startswith("pages-") and os.fstat(f.fileno()).st_size:
                data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            else:
                data = f.read()
        state += len(data)
        if name.startswith("pages-"):
            files[name], mapped[name] = "pages", data
            continue
        files[name] = hashlib.sha1(data).hexdigest()
        stream.write(file_header(name=name))
        if prev_files.get(name) == files[name]:
            stream.write(OP_COPY_PREV + _name_ref(name, 0, len(data)) + OP_END)
        else:
            stream.write(OP_DATA + SIZE.pack(len(data)) + data + OP_END)
            sent += len(data)
    return files, mapped, state, sent


def _stream_new_pages(mapped, stream, on_target):
    """A page file the target holds no version of (round 0's: the whole state) goes as it is
    hashed, a thread ahead of the link, so its hashing hides behind the send. Returns
    ({name: PageFile}, the bytes sent)."""
    pages, sent = {}, 0
    for name in (n for n in mapped if n not in on_target.held):
        view = memoryview(mapped[name])
        diff = PageDiff(name, view, on_target.index)
        stream.write(file_header(name=name, inplace=False))
        runs = []
        for run in _ahead(diff):
            runs.append(run)
            sent += _flush(stream, view, run)
        stream.write(OP_END)
        pages[name] = PageFile(mapped[name], runs, diff.digests)
    return pages, sent


def _diff_held_pages(img_dir, mapped, on_target, digests, ahead):
    """A page file the target holds is diffed whole before it goes: whether it can be patched
    in place depends on all its runs. Its pages' SHA-1s are those the dump's follower took
    (`digests`), else taken now. Returns ({name: PageFile}, the seconds it took)."""
    t0 = time.monotonic()
    held = {}
    for name in (n for n in mapped if n in on_target.held):
        view = memoryview(mapped[name])
        known = digests.get(name)
        if known is None or len(known) != len(view) // PAGE * DIGEST:  # not followed to the end
            known = page_digests(os.path.join(img_dir, name), on_target.held[name])
        prev = on_target.held[name].digests
        diff = PageDiff(name, view, on_target.index, prev, known, ahead)
        held[name] = PageFile(mapped[name], list(diff), diff.digests)
    return held, time.monotonic() - t0


def _send_held_pages(held, pages, stream):
    """The held page files' runs. One whose kept pages all stay where they are is patched in
    place on the target (a round then costs what changed, not the whole state), unless
    another file of the round (any of `pages`) still copies from last round's version of it.
    Returns the bytes sent."""
    borrowed = {
        src
        for name, (_, runs, _) in pages.items()
        for op, src, *_ in runs
        if op == OP_COPY_PREV and src != name
    }
    sent = 0
    for name, (data, runs, _) in held.items():
        inplace = name not in borrowed and all(
            op == OP_DATA or (src == name and off == start) or src == AHEAD
            for op, src, off, _, start in runs
        )
        stream.write(file_header(name=name, inplace=inplace))
        view = memoryview(data)
        for run in runs:
            sent += _flush(stream, view, run)
        stream.write(OP_END)
    return sent


def _keep_index(wd, img_dir, files, pages):
    """What the target now holds, this round's set, becomes the next round's index and held
    page files (kept once the stream has ended)."""
    held_dir = os.path.join(wd, HELD)
    os.makedirs(held_dir, exist_ok=True)
    for name in set(os.listdir(held_dir)) - set(pages):
        os.unlink(os.path.join(held_dir, name))
    for name, (_, _, digests) in pages.items():
        with open(os.path.join(wd, "index-" + name + ".new"), "wb") as f:
            f.write(digests)
        os.replace(os.path.join(wd, "index-" + name + ".new"), os.path.join(wd, "index-" + name))
        os.replace(os.path.join(img_dir, name), os.path.join(held_dir, name))
    with open(os.path.join(wd, "index.json"), "w") as f:
        json.dump(files, f)


def file_trees(prepared):
    return [("@layer", prepared["upper_dir"])] + [
        ("@volume:" + name, path) for name, path in sorted(prepared["volumes"].items())
    ]


class PageDiff:
    """A page file against what the target holds, iterated as Runs in file order, each as
    soon as it is closed: pages the target holds (preferably at the same place), pages sent
    ahead (`ahead`: landing.Landed's), pages repeated within the file, and new data (cut every
    DATA_RUN bytes, so new data streams as it is found). Once iterated, `digests` is its
    pages' SHA-1s (`prev`: last round's). Given them (`known`: the dump's follower took them),
    nothing is hashed, and a chunk whose pages are all last round's at the same place is taken
    whole."""

    def __init__(self, name, view, index, prev=b"", known=b"", ahead=None):
        self.name, self.view, self.index = name, view, index
        self.prev, self.known, self.ahead = prev, known, ahead or {}
        self.digests = None

    def __iter__(self):
        name, view, index, prev, ahead = self.name, self.view, self.index, self.prev, self.ahead
        known = self.known if len(self.known) == len(view) // PAGE * DIGEST else b""
        pages = bytearray()
        seen, closed = {}, []
        run = None

        def add(op, src, off, length, pos):  # runs grow as lists: cheaper than a tuple per page
            nonlocal run
            if run and run[0] == op:
                if op == OP_DATA:
                    extends = run[3] < DATA_RUN
                else:
                    extends = run[1] == src and run[2] + run[3] == off
            else:
                extends = False
            if extends:
                run[3] += length
                return
            if run:
                closed.append(Run._make(run))
            run = [op, src, off, length, pos]

        for chunk in range(0, len(view), CHUNK):
            end = min(chunk + CHUNK, len(view))
            first, last = chunk // PAGE * DIGEST, end // PAGE * DIGEST
            if known and known[first:last] == prev[first:last]:
                pages += known[first:last]
                add(OP_COPY_PREV, name, chunk, end - chunk, chunk)
            else:
                for pos in range(chunk, end, PAGE):
                    i = pos // PAGE * DIGEST
                    page = view[pos : pos + PAGE]
                    d = known[i : i + DIGEST] if known else hashlib.sha1(page).digest()
                    pages += d
                    if prev[i : i + DIGEST] == d:
                        add(OP_COPY_PREV, name, pos, len(page), pos)
                    elif d in index:
                        add(OP_COPY_PREV, *index[d], len(page), pos)
                    elif d in ahead:
                        add(OP_COPY_CUR, AHEAD, ahead[d], len(page), pos)
                    elif d in seen:
                        add(OP_COPY_CUR, name, seen[d], len(page), pos)
                    else:
                        seen[d] = pos
                        add(OP_DATA, None, None, len(page), pos)
            yield from closed
            closed.clear()
        if run:
            yield Run._make(run)
        self.digests = bytes(pages)


def _ahead(items, depth=16):
    """`items` made in a thread of their own, up to `depth` ahead of the caller: a file's
    pages are hashed while the ones before go over the link (a blocked write lets go of the
    GIL). The caller stopping early (a broken link) stops the thread at its next item."""
    made = queue.Queue(depth)
    stop = threading.Event()

    def make():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        made.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            made.put((False, None))
        except Exception as exc:  # raised where the caller takes the next item
            made.put((False, exc))

    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = made.get()
            if not ok:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _flush(stream, view, run):
    """Write one run of pages: their data, or where the target finds them; returns bytes sent."""
    op, src, off, length, start = run
    if op == OP_DATA:
        stream.write(OP_DATA + SIZE.pack(length) + view[start : start + length])
        return length
    stream.write(op + _name_ref(src, off, length))
    return 0


def _name_ref(name, offset, length):
    raw = name.encode()
    return NAME_LEN.pack(len(raw)) + raw + SPAN.pack(offset, length)


def tar_stream(directory, stream):
    """The writable layer as a tar in D frames (overlay whiteouts and opaque-dir xattrs kept)."""
    proc = subprocess.Popen(
        [
            "tar",
            "-C",
            directory,
            "--xattrs",
            "--xattrs-include=trusted.*",
            "--exclude=./.wb",
            "-cpf",
            "-",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    total = 0
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        stream.write(OP_DATA + SIZE.pack(len(chunk)) + chunk)
        total += len(chunk)
    if proc.wait() != 0:
        raise RuntimeError(f"tar of {directory} failed")
    return total
