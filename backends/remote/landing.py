"""A dump's page files followed while CRIU writes them (standard library only): each is
compared with this node's copy of the version the target holds, page by page, and a changed
page is hashed as it lands; given the stream to the target, the changed pages the target
holds nowhere go ahead at once, so the round's diff and most of its send hide behind the dump.

CRIU appends to a page file (splice at the file's offset) and never rewrites it: the bytes
below a file's size are final.
"""

import hashlib
import os
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from wire import AHEAD, CHUNK, OP_DATA, OP_END, PAGE, SIZE, file_header

# What following a dump came to: `digests` {page file name: its pages' SHA-1s} for each page
# file the target holds a version of; `ahead` {page SHA-1: its offset in the AHEAD file} for
# the pages already sent; `error` what stopped the sending (a broken link), or None.
Landed = namedtuple("Landed", "digests ahead error")
DIGEST = 20  # bytes of a page's SHA-1


class PagesAsTheyLand:
    """Follows the page files of a dump into `img_dir` (which holds none yet) that the target
    holds a version of (`on_target`: pagestream.OnTarget). With `sink` (the stream to the
    target, which nothing else writes until `finish`), the changed pages found in no file the
    target holds are written to it as the AHEAD file, the stream's first."""

    def __init__(self, img_dir, on_target, sink=None):
        self.img_dir, self.on_target = img_dir, on_target
        self._digests = {}  # page file name: its pages' SHA-1s so far
        self._ahead = SentAhead(sink, on_target.index) if sink is not None else None
        self._done = threading.Event()
        self._pool = all_cores()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def finish(self):
        """Once the dump has ended (or failed): Landed."""
        self._done.set()
        self._thread.join()
        self._pool.shutdown()
        digests = {name: bytes(d) for name, d in self._digests.items()}
        if self._ahead is None:
            return Landed(digests, {}, None)
        self._ahead.end()
        return Landed(digests, self._ahead.offsets, self._ahead.error)

    def _follow(self):
        opened = {}
        try:
            while True:
                last = self._done.is_set()  # set once the dump ended: this pass sees it all
                self._take_landed(opened, last)
                if self._ahead is not None:
                    self._ahead.flush()
                if last:
                    return
                self._done.wait(0.005)
        finally:
            for fds in opened.values():
                for fd in fds:
                    os.close(fd)

    def _take_landed(self, opened, last):
        held = self.on_target.held
        try:
            names = [n for n in os.listdir(self.img_dir) if n in held]
        except FileNotFoundError:
            return
        for name in names:
            if name not in opened:
                # No copy to compare with (): asked once, and the diff hashes its pages.
                opened[name] = _open_pair(os.path.join(self.img_dir, name), held[name].path)
            if not opened[name]:
                continue
            digests = self._digests.setdefault(name, bytearray())
            size = os.fstat(opened[name][0]).st_size
            # A chunk is taken once whole; a file's last, short one once the dump has ended.
            end = size if last else size // CHUNK * CHUNK
            at = len(digests) // DIGEST * PAGE
            prev = held[name].digests
            for chunk_digests, changed in _pages_of_chunks(
                self._pool, *opened[name], size, prev, at, end
            ):
                if self._ahead is not None:
                    self._ahead.send(changed, chunk_digests)
                digests += chunk_digests


class SentAhead:
    """The AHEAD file written to the stream while the dump runs: each changed page whose
    SHA-1 the target holds nowhere (`index`) and that was not sent already, in the order
    found. A write that fails (a broken link) stops it; the round then fails on `error`."""

    def __init__(self, sink, index):
        self.sink, self.index = sink, index
        self.offsets = {}  # page SHA-1: offset in the AHEAD file
        self.size = 0
        self.error = None
        self._begun = self._unflushed = False

    def send(self, changed, chunk_digests):
        """`changed` [(offset in the chunk, page)]: pages unlike the held file's there."""
        pages = []
        for at, page in changed:
            digest = chunk_digests[at // PAGE * DIGEST : at // PAGE * DIGEST + DIGEST]
            if digest not in self.index and digest not in self.offsets:
                self.offsets[digest] = self.size + len(pages) * PAGE
                pages.append(page)
        if pages:
            self._write(OP_DATA + SIZE.pack(len(pages) * PAGE) + b"".join(pages))
            self.size += len(pages) * PAGE

    def flush(self):
        if self._unflushed and self.error is None:
            self._unflushed = False
            try:
                self.sink.flush()
            except OSError as exc:
                self.error = exc

    def end(self):
        if self._begun:
            self._write(OP_END)
            self.flush()

    def _write(self, data):
        if self.error is not None:
            return
        try:
            if not self._begun:
                self.sink.write(file_header(name=AHEAD))
                self._begun = True
            self.sink.write(data)
            self._unflushed = True
        except OSError as exc:
            self.error = exc


def page_digests(path, held):
    """The SHA-1s of the page file at `path`, its pages like the `held` file's (Held) at the
    same place taken from it, the others hashed; b"" if the held copy cannot be read."""
    fds = _open_pair(path, held.path)
    if not fds:
        return b""
    try:
        with all_cores() as pool:
            size = os.fstat(fds[0]).st_size
            return b"".join(d for d, _ in _pages_of_chunks(pool, *fds, size, held.digests, 0, size))
    finally:
        for fd in fds:
            os.close(fd)


def all_cores():
    # pread and SHA-1 let go of the GIL and a compare is a memcmp: chunks go on every core.
    return ThreadPoolExecutor(len(os.sched_getaffinity(0)))


def _open_pair(path, held_path):
    """Both files opened, or () if the held one cannot be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return fd, os.open(held_path, os.O_RDONLY)
    except OSError:
        os.close(fd)
        return ()


def _pages_of_chunks(pool, fd, held_fd, size, prev, first, end):
    """(its pages' SHA-1s, [(offset in the chunk, page)] unlike the held file's there) of each
    CHUNK from `first` to `end`, in order; a few chunks at a time, so that pages waiting on a
    slow link hold little memory."""

    def chunk(at):
        return _chunk_pages(fd, held_fd, size, prev, at)

    starts = range(first, end, CHUNK)
    window = 4 * len(os.sched_getaffinity(0))
    for i in range(0, len(starts), window):
        yield from pool.map(chunk, starts[i : i + window])


def _chunk_pages(fd, held_fd, size, prev, at):
    length = min(CHUNK, size - at)
    data, was = os.pread(fd, length, at), os.pread(held_fd, length, at)
    known = prev[at // PAGE * DIGEST : (at + length) // PAGE * DIGEST]
    whole = len(known) == length // PAGE * DIGEST
    if data == was and whole:
        return known, ()
    digests, changed = bytearray(), []
    view, was_view = memoryview(data), memoryview(was)
    for off in range(0, length, PAGE):
        page = view[off : off + PAGE]
        i = off // PAGE * DIGEST
        same = page == was_view[off : off + PAGE]
        if same and i + DIGEST <= len(known):
            digests += known[i : i + DIGEST]
            continue
        digests += hashlib.sha1(page).digest()
        if not same:
            changed.append((off, page))
    return bytes(digests), changed
