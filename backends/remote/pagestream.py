"""A round's CRIU images as a stream to the target (standard library only): see wire.py for
the format.

Images go as a stream of files; for CRIU's pages-*.img, page by page (4 KiB): a page the
target already holds from the previous round is sent as a copy instruction, so each round
sends only what changed. Whether a chunk of pages is where it was is a byte compare with this
node's copy of the file the target holds; a page found elsewhere is found by its SHA-1 (for
identity against accident here: a forged collision could only corrupt the forger's own memory).
"""

import functools
import hashlib
import json
import mmap
import os
import queue
import subprocess
import threading
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from wire import (
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


class ChunksAsTheyLand:
    """Which chunks (CHUNK) of a dump's page files hold the same bytes as the target's version
    at the same place (`held`: OnTarget.held), compared while CRIU writes them, so that the
    diff after the dump is left only the changed chunks' pages to hash. CRIU appends to a page
    file (splice at the file's offset) and never rewrites it: the bytes below a file's size
    are final. Start it on an image dir that holds no page files yet."""

    def __init__(self, img_dir, held):
        self.img_dir, self.held = img_dir, held
        self._same = {}  # page file name: one byte per chunk compared so far (1: the same)
        self._done = threading.Event()
        self._pool = _all_cores()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def finish(self):
        """Once the dump has ended: {page file name: a byte per chunk, 1 if it is the same}."""
        self._done.set()
        self._thread.join()
        self._pool.shutdown()
        return {name: bytes(same) for name, same in self._same.items()}

    def _follow(self):
        opened = {}
        try:
            while True:
                last = self._done.is_set()  # set once the dump ended: this pass sees it all
                self._compare_landed(opened, last)
                if last:
                    return
                self._done.wait(0.005)
        finally:
            for fds in opened.values():
                for fd in fds:
                    os.close(fd)

    def _compare_landed(self, opened, last):
        try:
            names = [n for n in os.listdir(self.img_dir) if n in self.held]
        except FileNotFoundError:
            return
        for name in names:
            if name not in opened:
                # No copy to compare with (): asked once, and the diff hashes its pages.
                opened[name] = _open_pair(os.path.join(self.img_dir, name), self.held[name].path)
            if not opened[name]:
                continue
            same = self._same.setdefault(name, bytearray())
            size = os.fstat(opened[name][0]).st_size
            # A chunk is compared once whole; a file's last, short one once the dump has ended.
            end = size if last else size // CHUNK * CHUNK
            same += _compare(self._pool, *opened[name], size, len(same) * CHUNK, end)


def same_chunks(path, held_path):
    """A byte per CHUNK of the page file at `path`: 1 where the held file at `held_path` has
    the same bytes at the same place (none if it cannot be read)."""
    fds = _open_pair(path, held_path)
    if not fds:
        return b""
    try:
        with _all_cores() as pool:
            size = os.fstat(fds[0]).st_size
            return _compare(pool, *fds, size, 0, size)
    finally:
        for fd in fds:
            os.close(fd)


def _all_cores():
    # pread lets go of the GIL and the compare is a memcmp: chunks compare on every core.
    return ThreadPoolExecutor(len(os.sched_getaffinity(0)))


def _open_pair(path, held_path):
    """Both files opened, or () if the held one cannot be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return fd, os.open(held_path, os.O_RDONLY)
    except OSError:
        os.close(fd)
        return ()


def _compare(pool, fd, held_fd, size, first, end):
    same = functools.partial(_same_chunk, fd, held_fd, size)
    return bytes(pool.map(same, range(first, end, CHUNK)))


def _same_chunk(fd, held_fd, size, at):
    length = min(CHUNK, size - at)
    return os.pread(fd, length, at) == os.pread(held_fd, length, at)


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


def _header(stream, **fields):
    header = json.dumps(fields).encode()
    stream.write(LENGTH.pack(len(header)) + header)


def send_images(img_dir, wd, stream, on_target, trees=(), landed=None):
    """Write the round's images, then the file trees (`[(entry, dir)]`: the writable layer as
    "@layer", each named volume as "@volume:NAME") to `stream`; returns Sent. `on_target` is
    load_index()'s OnTarget; `landed` ChunksAsTheyLand's comparisons, when it followed the
    dump. The page files then become the held ones of the work dir `wd` (moved out of
    `img_dir`); the final round, which no round follows, passes None (freeing last round's
    files would cost its downtime ~0.2 s a GiB)."""
    files, mapped, state, sent = _send_small_files(img_dir, stream, on_target.files)
    stream.flush()  # at once: a lazy restore's daemon starts on them while the pages come
    pages, streamed = _stream_new_pages(mapped, stream, on_target)
    held, diff_s = _diff_held_pages(img_dir, mapped, on_target, landed or {})
    pages.update(held)
    sent += streamed + _send_held_pages(held, pages, stream)
    for entry, directory in trees:
        _header(stream, name=entry)
        sent += tar_stream(directory, stream)
        stream.write(OP_END)
    stream.write(LENGTH.pack(0))
    stream.flush()
    if wd is not None:
        _keep_index(wd, img_dir, files, pages)
    return Sent(state, sent, diff_s)


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
        _header(stream, name=name)
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
        _header(stream, name=name, inplace=False)
        runs = []
        for run in _ahead(diff):
            runs.append(run)
            sent += _flush(stream, view, run)
        stream.write(OP_END)
        pages[name] = PageFile(mapped[name], runs, diff.digests)
    return pages, sent


def _diff_held_pages(img_dir, mapped, on_target, landed):
    """A page file the target holds is diffed whole before it goes: whether it can be patched
    in place depends on all its runs. Returns ({name: PageFile}, the seconds it took)."""
    t0 = time.monotonic()
    held = {}
    for name in (n for n in mapped if n in on_target.held):
        view = memoryview(mapped[name])
        prev = on_target.held[name]
        same = landed.get(name)
        if same is None or len(same) != -(-len(view) // CHUNK):  # not followed to the end
            same = same_chunks(os.path.join(img_dir, name), prev.path)
        diff = PageDiff(name, view, on_target.index, prev.digests, same)
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
            op == OP_DATA or (src == name and off == start) for op, src, off, _, start in runs
        )
        _header(stream, name=name, inplace=inplace)
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
    soon as it is closed: pages the target holds (preferably at the same place), pages
    repeated within the file, and new data (cut every DATA_RUN bytes, so new data streams
    as it is found). Once iterated, `digests` is its pages' SHA-1s (`prev`: last round's).
    A chunk that `same` (a byte per chunk) says holds last round's bytes at the same place is
    taken whole with last round's SHA-1s: a round then hashes about what changed."""

    def __init__(self, name, view, index, prev=b"", same=b""):
        self.name, self.view, self.index = name, view, index
        self.prev, self.same = prev, same
        self.digests = None

    def __iter__(self):
        name, view, index, prev, same = self.name, self.view, self.index, self.prev, self.same
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

        for number, chunk in enumerate(range(0, len(view), CHUNK)):
            end = min(chunk + CHUNK, len(view))
            prev_chunk_pages = prev[chunk // PAGE * 20 : end // PAGE * 20]
            if (
                number < len(same)
                and same[number]
                and len(prev_chunk_pages) == (end - chunk) // PAGE * 20
            ):
                pages += prev_chunk_pages
                add(OP_COPY_PREV, name, chunk, end - chunk, chunk)
            else:
                for pos in range(chunk, end, PAGE):
                    page = view[pos : pos + PAGE]
                    d = hashlib.sha1(page).digest()
                    pages += d
                    if prev[pos // PAGE * 20 : pos // PAGE * 20 + 20] == d:
                        add(OP_COPY_PREV, name, pos, len(page), pos)
                    elif d in index:
                        add(OP_COPY_PREV, *index[d], len(page), pos)
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
