"""Measure how fast a container dirties its memory, on the container's node.

Sent over SSH and run as `python3 - --pid PID --seconds N [--interval S] [--method M]`:
standard library only, Python >= 3.9, nothing of whimbrel imported. PID is the container's
init; its descendants (found through /proc/PID/task/*/children) are measured with it.

Two methods, the best the node offers (`--method auto`):
  soft-dirty  the kernel's soft-dirty bits: write 4 to /proc/PID/clear_refs, and at the next
              sample count the pages of writable mappings whose /proc/PID/pagemap entry has
              bit 55 set. Cheap (8 bytes of pagemap per page). Pages are counted at the
              granularity the kernel tracks them, so a write into a transparent huge page
              dirties all of it: what a CRIU pre-dump would then send.
  hash        otherwise: a CRC-32 of every resident page of the writable mappings, read through
              /proc/PID/mem, compared with the previous snapshot's. Costs a read and a hash of all
              resident memory per sample.
Either way the memory measured is what a dump carries, resident or swapped: the written pages
of private writable mappings, and writable shared anonymous memory (counted once however many
processes map it).

Output, JSON lines on stdout, each flushed:
  {"type": "start", "method", "pids", "pages", "page_size", "t", "cpu_s"}
  {"type": "sample", "t", "interval_s", "dirty_pages", "dirty_bytes", "pages", "cpu_s", "pids",
   "distinct_pages"}
      one per interval: the distinct pages changed between two consecutive snapshots, over
      the time between their starts; cpu_s is this helper's CPU time (user + system) since
      the previous line, so the cost of one sample; distinct_pages (hash method only) how
      many of the snapshot's pages differ from each other by content.
  {"type": "end", "method", "samples", "seconds", "dirty_pages", "dirty_bytes", "bytes_per_s",
   "cpu_s"}
  {"type": "error", "message"} instead, with exit status 1 (2 for bad arguments).

Do not use soft-dirty on a container that CRIU is pre-dumping with memory tracking: both clear
the same bits, so each would hide the other's dirty pages (and CRIU would then miss pages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zlib
from array import array
from bisect import bisect_right
from operator import ne
from typing import NamedTuple, NoReturn

PAGE = os.sysconf("SC_PAGE_SIZE")
# /proc/PID/mem is read 1 MiB at a time: fewer syscalls than smaller reads, and it is hashed
# while still in cache (measured fastest of 64 KiB .. 8 MiB).
READ_PAGES = (1 << 20) // PAGE
# pagemap entries per read (512 KiB), so a huge sparse mapping does not balloon the helper.
PAGEMAP_WINDOW = 1 << 16
# The kernel's own special mappings, never the container's data.
SPECIAL = {"[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]"}
# Shared mappings backed by anonymous shared memory (tmpfs-internal), which a dump carries;
# other shared mappings are files, whose content the file already holds.
SHARED_ANON = ("/dev/zero", "/SYSV", "/memfd:", "[anon_shmem:")
# Byte 7 of a little-endian pagemap entry holds bits 63 (present, 0x80), 62 (swapped, 0x40) and
# 61 (a file page, 0x20). In a private mapping a present file page is one not yet copied on
# write, or the shared zero page: unwritten, and left out of a dump, so left out here too.
PRESENT_RUNS = re.compile(rb"[\x80-\xff]+")
PRIVATE_RUNS = re.compile(rb"[\x80-\x9f\xc0-\xdf]+")  # present, not a file page
SWAPPED_RUNS = re.compile(rb"[\x40-\x7f]+")
PROBE_PAGES = 64


class Failure(Exception):
    """The measurement cannot go on; the message is for the operator."""


def emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def processes(root: int) -> list[int]:
    """ROOT and all its descendants, this helper excluded (if it is run inside the tree)."""
    if not os.path.isdir(f"/proc/{root}/task"):
        raise Failure(f"process {root} does not exist (the container stopped?)")
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:  # exited while we walked
            continue
        # A child is listed under the thread that forked it. The children file needs
        # CONFIG_PROC_CHILDREN, which CONFIG_CHECKPOINT_RESTORE (so every CRIU node) selects.
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
    found.discard(os.getpid())
    return sorted(found)


class Region(NamedTuple):
    """A mapping a dump carries.

    A private mapping's space is its process and `first` its first page's number; shared
    anonymous memory is keyed by its inode and file offset instead, so a segment that several
    processes map is one set of pages.
    """

    address: int
    pages: int
    space: tuple  # ("pid", PID) or ("shm", DEVICE, INODE)
    first: int  # the index of its first page in `space`


def writable_regions(pid: int) -> list[Region]:
    """Each mapping of PID that a dump carries."""
    regions = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            perms = fields[1]
            path = fields[5].strip() if len(fields) > 5 else ""
            if perms[1] != "w" or path in SPECIAL:
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            if perms[3] == "p":
                space, first = ("pid", pid), start // PAGE
            elif path.startswith(SHARED_ANON):
                space, first = ("shm", fields[3], int(fields[4])), int(fields[2], 16) // PAGE
            else:
                continue
            regions.append(Region(start, (end - start) // PAGE, space, first))
    return regions


def page_flags(pagemap: int, address: int, pages: int) -> tuple[bytes, bytes]:
    """Bytes 6 and 7 of each page's 64-bit little-endian pagemap entry, one byte per page.

    Bit 55 (soft-dirty) is 0x80 of byte 6; bits 63 (present) and 62 (swapped) are 0x80 and
    0x40 of byte 7. Pages past a short read (the process exited) read as absent.
    """
    low, high = [], []
    for first in range(0, pages, PAGEMAP_WINDOW):
        count = min(PAGEMAP_WINDOW, pages - first)
        raw = os.pread(pagemap, count * 8, (address // PAGE + first) * 8)
        low.append(raw[6::8])
        high.append(raw[7::8])
    return b"".join(low).ljust(pages, b"\0"), b"".join(high).ljust(pages, b"\0")


def soft_dirty_bits(low: bytes, high: bytes, shared: bool) -> tuple[int, int]:
    """The pages that are soft-dirty and live, and the live pages, from page_flags.

    Live: present or swapped, and in a private mapping not a file page (see PRIVATE_RUNS).
    Each result is a big integer with 0x80 in the byte of every such page: whole-region bit
    operations instead of a Python loop per page. Holes are never live, so the holes of a
    mapping created since the last clear (which the kernel reports all soft-dirty) don't count.
    """
    mask = int.from_bytes(b"\x80" * len(high), "little")
    flags = int.from_bytes(high, "little")
    present = flags if shared else flags & ~(flags << 2)  # file (0x20) shifted onto 0x80
    live = (present | flags << 1) & mask  # swapped (0x40) shifted onto present (0x80)
    return int.from_bytes(low, "little") & live, live


def count_marks(bits: int, pages: int) -> int:
    """How many of the PAGES bytes of BITS are 0x80 (int.bit_count is Python 3.10+)."""
    return bits.to_bytes(pages, "little").count(0x80)


def clear_soft_dirty(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("4")


class SoftDirty:
    """Counts the pages the kernel marked soft-dirty since the previous sample, then clears them.

    Each process is cleared right after it is read, so the writes it loses are those made
    during its own read. A clear write-protects the pages again: the container then takes a
    minor fault on its first write to each page per interval, a cost not in this helper's cpu_s.
    """

    distinct = None  # bits say nothing of content

    def sample(self, pids: list[int], clear: bool = True) -> tuple[int, int]:
        segments: dict[tuple, tuple[int, int]] = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
                    for address, pages, space, first in writable_regions(pid):
                        low, high = page_flags(pagemap.fileno(), address, pages)
                        dirty, live = soft_dirty_bits(low, high, space[0] == "shm")
                        key = (space, first, pages)
                        if key in segments:  # shared memory: dirty through any of its mappers
                            seen_dirty, seen_live = segments[key]
                            dirty, live = dirty | seen_dirty, live | seen_live
                        segments[key] = (dirty, live)
                if clear:
                    clear_soft_dirty(pid)
            except (FileNotFoundError, ProcessLookupError):  # exited mid-walk
                continue
        dirty = sum(count_marks(bits, key[2]) for key, (bits, _) in segments.items())
        live = sum(count_marks(bits, key[2]) for key, (_, bits) in segments.items())
        return dirty, live


def soft_dirty_works() -> bool:
    """Whether this kernel tracks soft-dirty bits, tried on this helper's own memory.

    Without CONFIG_MEM_SOFT_DIRTY, clear_refs still accepts 4 and bit 55 just never shows; so
    clear, rewrite PROBE_PAGES resident pages, and expect at least that many more dirty pages.
    """
    probe = bytearray(PROBE_PAGES * PAGE)
    probe[::PAGE] = b"\1" * PROBE_PAGES  # resident before the clear
    me = os.getpid()
    try:
        clear_soft_dirty(me)
        before = SoftDirty().sample([me], clear=False)[0]
        probe[::PAGE] = b"\2" * PROBE_PAGES
        after = SoftDirty().sample([me], clear=False)[0]
    except OSError:  # no clear_refs or pagemap here (gVisor, a locked-down /proc)
        return False
    return after - before >= PROBE_PAGES


class Segment:
    """A mapping's page digests in one snapshot (0: not resident).

    With the previous snapshot's digests lined up page for page, and for shared memory the
    pages already read (through another process that maps it).
    """

    __slots__ = ("digests", "previous", "seen")

    def __init__(self, pages: int, previous: array) -> None:
        self.digests = array("I", bytes(4 * pages))
        self.previous = previous
        self.seen = 0


class Hashes:
    """Counts the resident pages whose content changed since the previous snapshot.

    The digest is zlib.crc32, the fastest page digest in the standard library (about 3 GiB/s
    here, against 1.7 for hashlib's sha1 and under 1 for md5 or blake2b), 4 bytes a page.
    A changed page keeps its CRC with odds of 2**-32 (never for a change within 32 bits): it is
    then missed, an under-count that a rate estimate can bear. A page that became resident
    counts as dirty (a private one was written; shared memory may just have been read in), one
    that left does not; a swapped-out page keeps its digest, so it counts when it returns
    changed. Only resident pages are read: reading a hole would fault it in.
    """

    def __init__(self) -> None:
        # The digests seen in the last snapshot: how many pages differ from each other, which
        # is what a whole dump costs the link (the data path sends a repeated page once).
        self.contents: set[int] = set()
        self.distinct: int | None = None
        # space -> (first page of each segment, sorted; (first, pages, digests) of each)
        self.previous: dict[tuple, tuple[list[int], list[tuple[int, int, array]]]] = {}
        self.buffer = memoryview(bytearray(READ_PAGES * PAGE))
        # Preset per-page slices, so hashing a read is C loops over map(), no bytecode per page.
        self.page_slices = [slice(i * PAGE, (i + 1) * PAGE) for i in range(READ_PAGES)]

    def sample(self, pids: list[int]) -> tuple[int, int]:
        segments: dict[tuple, Segment] = {}
        dirty = live = 0
        self.contents = set()
        for pid in pids:
            try:
                changed, resident = self.walk(pid, segments)
            except (FileNotFoundError, ProcessLookupError):  # exited mid-walk
                continue
            dirty += changed
            live += resident
        by_space: dict[tuple, list[tuple[int, int, array]]] = {}
        for (space, first, pages), segment in segments.items():
            by_space.setdefault(space, []).append((first, pages, segment.digests))
        self.distinct = len(self.contents)
        self.previous = {}
        for space, entries in by_space.items():
            entries.sort(key=lambda entry: entry[0])
            self.previous[space] = ([entry[0] for entry in entries], entries)
        return dirty, live

    def walk(self, pid: int, segments: dict[tuple, Segment]) -> tuple[int, int]:
        """Digest PID's pages into SEGMENTS; (how many changed, how many are live)."""
        dirty = live = 0
        with open(f"/proc/{pid}/mem", "rb", 0) as mem, open(f"/proc/{pid}/pagemap", "rb", 0) as pm:
            for address, pages, space, first in writable_regions(pid):
                _, high = page_flags(pm.fileno(), address, pages)
                key = (space, first, pages)
                segment = segments.get(key)
                if segment is None:
                    segment = segments[key] = Segment(pages, self.lined_up(space, first, pages))
                if space[0] == "shm":
                    # Read each page once, through the first mapper that has it resident
                    # (reading a hole of shared memory would allocate it).
                    mask = int.from_bytes(b"\x80" * pages, "little")
                    present = int.from_bytes(high, "little") & mask
                    todo = (present & ~segment.seen).to_bytes(pages, "little")
                    segment.seen |= present
                    runs = PRESENT_RUNS
                else:
                    todo, runs = high, PRIVATE_RUNS
                    for run in SWAPPED_RUNS.finditer(high):
                        start, end = run.span()
                        segment.digests[start:end] = segment.previous[start:end]
                        live += end - start
                for run in runs.finditer(todo):
                    changed, hashed = self.hash_run(mem.fileno(), address, run.span(), segment)
                    dirty += changed
                    live += hashed
        return dirty, live

    def hash_run(
        self, mem: int, address: int, span: tuple[int, int], segment: Segment
    ) -> tuple[int, int]:
        """Digest the resident pages SPAN of a mapping; (how many changed, how many read)."""
        changed = hashed = 0
        for first in range(span[0], span[1], READ_PAGES):
            count = min(READ_PAGES, span[1] - first)
            try:
                got = os.preadv(mem, [self.buffer[: count * PAGE]], address + first * PAGE)
            except OSError:  # device memory and the like cannot be read: left uncounted
                continue
            got //= PAGE
            digests = list(map(zlib.crc32, map(self.buffer.__getitem__, self.page_slices[:got])))
            segment.digests[first : first + got] = array("I", digests)
            self.contents.update(digests)
            changed += sum(map(ne, digests, segment.previous[first : first + got]))
            hashed += got
        return changed, hashed

    def lined_up(self, space: tuple, first: int, pages: int) -> array:
        """The previous digests of SPACE's pages FIRST.., page for page (0: none)."""
        out = array("I", bytes(4 * pages))
        starts, entries = self.previous.get(space, ([], []))
        # Walk back over the previous segments that begin before this one ends. A process's
        # mappings never overlap; windows of one shared segment that partly overlap may line up
        # incompletely, and their pages then count as new.
        i = bisect_right(starts, first + pages - 1)
        while i:
            i -= 1
            old_first, old_pages, digests = entries[i]
            if old_first + old_pages <= first:
                break
            lo, hi = max(first, old_first), min(first + pages, old_first + old_pages)
            out[lo - first : hi - first] = digests[lo - old_first : hi - old_first]
        return out


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        emit({"type": "error", "message": f"dirtyrate: {message}"})
        sys.exit(2)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def choose_method(wanted: str) -> str:
    if wanted == "hash":
        return "hash"
    works = soft_dirty_works()
    if wanted == "soft-dirty" and not works:
        raise Failure("this kernel does not track soft-dirty bits (CONFIG_MEM_SOFT_DIRTY unset)")
    return "soft-dirty" if works else "hash"


def measure(root: int, seconds: float, interval: float, method: str) -> None:
    cpu_start = time.process_time()
    sampler = SoftDirty() if method == "soft-dirty" else Hashes()
    pids = processes(root)
    start = time.monotonic()
    _, pages = sampler.sample(pids)  # the baseline: bits cleared, or first digests taken
    last_cpu = time.process_time()
    emit(
        {
            "type": "start",
            "method": method,
            "pids": pids,
            "pages": pages,
            "page_size": PAGE,
            "t": start,
            "cpu_s": last_cpu - cpu_start,
        }
    )
    # SECONDS bounds the run: when snapshots take longer than the interval (hashing a big
    # container), fewer samples are taken, each over a longer interval.
    deadline = start + seconds + interval / 2
    last_t, total, samples = start, 0, 0
    for k in range(1, max(1, round(seconds / interval)) + 1):
        if k > 1 and time.monotonic() > deadline:
            break
        time.sleep(max(0.0, start + k * interval - time.monotonic()))
        t = time.monotonic()
        pids = processes(root)
        dirty, pages = sampler.sample(pids)
        cpu = time.process_time()
        emit(
            {
                "type": "sample",
                "t": t,
                "interval_s": t - last_t,
                "dirty_pages": dirty,
                "dirty_bytes": dirty * PAGE,
                "pages": pages,
                "cpu_s": cpu - last_cpu,
                "pids": len(pids),
                **({} if sampler.distinct is None else {"distinct_pages": sampler.distinct}),
            }
        )
        total += dirty
        samples += 1
        last_t, last_cpu = t, cpu
    emit(
        {
            "type": "end",
            "method": method,
            "samples": samples,
            "seconds": last_t - start,
            "dirty_pages": total,
            "dirty_bytes": total * PAGE,
            "bytes_per_s": total * PAGE / (last_t - start),
            "cpu_s": time.process_time() - cpu_start,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="dirtyrate", description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the container's init process")
    parser.add_argument("--seconds", type=positive, required=True, help="how long to measure")
    parser.add_argument("--interval", type=positive, default=1.0, help="seconds per sample")
    parser.add_argument("--method", choices=("auto", "soft-dirty", "hash"), default="auto")
    args = parser.parse_args(argv)
    try:
        measure(args.pid, args.seconds, args.interval, choose_method(args.method))
    except BrokenPipeError:
        # The operator hung up. Point stdout at /dev/null so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except PermissionError as exc:
        emit({"type": "error", "message": f"{exc}: the helper must run as root"})
        return 1
    except (Failure, OSError) as exc:
        emit({"type": "error", "message": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
