"""The node-side dirty-rate helper, run here against local memwriters, and its operator side.

The helper is a standalone script (it is sent to nodes as text), so these tests run it as a
`python3` subprocess the way a node does, and load it from its path for unit tests.
"""

from __future__ import annotations

import ctypes
import gzip
import importlib.util
import json
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from whimbrel.backends.dirty import (
    DirtySample,
    helper_args,
    parse_line,
    script_text,
    summarize,
)
from whimbrel.backends.errors import UsageError, WhimbrelError

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "backends" / "remote" / "dirtyrate.py"
MEMWRITER_SOURCE = ROOT / "backends" / "lab" / "memwriter.c"
MiB = 2**20

_spec = importlib.util.spec_from_file_location("dirtyrate", SCRIPT)
assert _spec is not None and _spec.loader is not None
helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helper)
PAGE = helper.PAGE


def kernel_tracks_soft_dirty() -> bool:
    """The ground truth for the helper's probe: the running kernel's build configuration."""
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")):
        if path.exists():
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
            return "CONFIG_MEM_SOFT_DIRTY=y" in text.splitlines()
    pytest.fail("no kernel config (/proc/config.gz, /boot/config-*) to check the probe against")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_helper(*args: str, stdin: str | None = None) -> tuple[int, list[dict]]:
    """Run the helper as a node would (`python3 SCRIPT ARGS`, or `python3 - ARGS` with STDIN)."""
    command = ["python3", "-" if stdin is not None else str(SCRIPT), *args]
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def samples_of(lines: list[dict]) -> list[DirtySample]:
    return [s for s in map(parse_line, map(json.dumps, lines)) if isinstance(s, DirtySample)]


@pytest.fixture(scope="module")
def memwriter_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("memwriter") / "memwriter"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(MEMWRITER_SOURCE)], check=True)
    return binary


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a process in its own session; every one is killed, with its children, at teardown."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], ready_lines: int = 1) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        assert proc.stdout is not None
        for _ in range(ready_lines):  # each memwriter says so once its memory is filled
            assert proc.stdout.readline(), f"{argv[0]} exited before it was ready"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def memwriter_argv(binary: Path, rate: str, size: str = "256MiB") -> list[str]:
    return [str(binary), "--size", size, "--hot", size, "--rate", rate, "--port", str(free_port())]


# ---- against local memwriters ---------------------------------------------------------------


@pytest.mark.parametrize("rate_mib", [1, 8, 32])
def test_reports_memwriter_rate_within_20_percent_naming_the_method(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen], rate_mib: int
) -> None:
    writer = spawn(memwriter_argv(memwriter_binary, f"{rate_mib}MiB/s"))
    status, lines = run_helper(*helper_args(writer.pid, seconds=3, interval=1.0))
    assert status == 0, lines
    start, end = lines[0], lines[-1]
    assert start["type"] == "start" and end["type"] == "end"
    assert start["method"] == ("soft-dirty" if kernel_tracks_soft_dirty() else "hash")
    assert start["pids"] == [writer.pid]
    assert start["pages"] >= 256 * MiB // PAGE
    report = summarize(start["method"], samples_of(lines), page_size=start["page_size"])
    assert len(report.samples) == 3
    assert report.bytes_per_s == pytest.approx(rate_mib * MiB, rel=0.2)
    assert end["bytes_per_s"] == pytest.approx(rate_mib * MiB, rel=0.2)
    assert report.memory_bytes >= 256 * MiB
    assert all(s.cpu_s > 0 for s in report.samples)


def test_idle_process_reports_near_zero_when_run_from_stdin(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen]
) -> None:
    writer = spawn(memwriter_argv(memwriter_binary, "0"))
    status, lines = run_helper(*helper_args(writer.pid, seconds=2), stdin=script_text())
    assert status == 0, lines
    report = summarize(lines[0]["method"], samples_of(lines))
    assert report.bytes_per_s < 64 * 1024  # its stack and globals: a page or so per second


def test_the_hash_method_counts_pages_alike_once(spawn: Callable[..., subprocess.Popen]) -> None:
    # 64 MiB of one repeated page and 16 MiB of random ones: what a dump of it costs the link
    # is about the random part (and the interpreter's own pages), not all of it.
    holder = spawn(
        [sys.executable, "-c", "import os, time; same = bytearray(b'x' * (64 << 20)); "
         "rand = bytearray(os.urandom(16 << 20)); print('ready', flush=True); time.sleep(60)"]
    )  # fmt: skip
    status, lines = run_helper(*helper_args(holder.pid, seconds=1, interval=0.5, method="hash"))
    assert status == 0, lines
    last = samples_of(lines)[-1]
    assert last.distinct_pages is not None and last.pages >= (80 << 20) // PAGE
    assert (16 << 20) // PAGE <= last.distinct_pages < last.pages * 0.45
    report = summarize("hash", samples_of(lines))
    assert report.distinct_share == last.distinct_pages / last.pages


def test_measures_every_process_of_the_tree(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen]
) -> None:
    writers = " & ".join(
        " ".join(memwriter_argv(memwriter_binary, "4MiB/s", size="64MiB")) for _ in range(2)
    )
    shell = spawn(["sh", "-c", f"{writers} & wait"], ready_lines=2)
    status, lines = run_helper(*helper_args(shell.pid, seconds=2))
    assert status == 0, lines
    assert len(lines[0]["pids"]) == 3 and shell.pid in lines[0]["pids"]
    report = summarize(lines[0]["method"], samples_of(lines))
    assert report.bytes_per_s == pytest.approx(8 * MiB, rel=0.2)


def test_seconds_bound_the_run_when_snapshots_outlast_the_interval(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen]
) -> None:
    writer = spawn(memwriter_argv(memwriter_binary, "8MiB/s", size="64MiB"))
    status, lines = run_helper(*helper_args(writer.pid, seconds=0.5, interval=0.001))
    assert status == 0, lines
    samples, end = samples_of(lines), lines[-1]
    assert 1 <= end["samples"] == len(samples) < 500  # hashing 64 MiB takes far over 1 ms
    assert end["seconds"] < 0.5 + 0.5
    assert end["bytes_per_s"] == pytest.approx(8 * MiB, rel=0.2)


def test_vanished_pid_gives_error_line_and_nonzero_exit() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    status, lines = run_helper("--pid", str(gone.pid), "--seconds", "1")
    assert status == 1
    assert lines == [{"type": "error", "message": lines[0]["message"]}]
    assert str(gone.pid) in lines[0]["message"]


def test_pid_exiting_mid_measurement_ends_with_error_line(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen]
) -> None:
    writer = spawn(memwriter_argv(memwriter_binary, "1MiB/s", size="16MiB"))
    command = ["python3", str(SCRIPT), *helper_args(writer.pid, seconds=30, interval=0.2)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as measuring:
        assert measuring.stdout is not None
        assert json.loads(measuring.stdout.readline())["type"] == "start"
        assert json.loads(measuring.stdout.readline())["type"] == "sample"
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
        rest = [json.loads(line) for line in measuring.stdout]
        assert measuring.wait(timeout=10) == 1
    assert rest[-1]["type"] == "error" and str(writer.pid) in rest[-1]["message"]


def test_soft_dirty_method_is_available_exactly_when_the_kernel_tracks_it(
    memwriter_binary: Path, spawn: Callable[..., subprocess.Popen]
) -> None:
    assert helper.soft_dirty_works() == kernel_tracks_soft_dirty()
    writer = spawn(memwriter_argv(memwriter_binary, "1MiB/s", size="16MiB"))
    status, lines = run_helper(*helper_args(writer.pid, 0.2, 0.2, method="soft-dirty"))
    if kernel_tracks_soft_dirty():
        assert status == 0 and lines[0]["method"] == "soft-dirty"
    else:
        assert status == 1 and "CONFIG_MEM_SOFT_DIRTY" in lines[0]["message"]


def test_shared_memory_is_read_once_however_many_processes_map_it(
    spawn: Callable[..., subprocess.Popen],
) -> None:
    shared_pages = 2048
    program = f"""
import mmap, os, time
shared = mmap.mmap(-1, {shared_pages * PAGE})  # MAP_SHARED | MAP_ANONYMOUS
shared.write(os.urandom(len(shared)))
if os.fork() == 0:
    shared[::{PAGE}]  # fault the pages into the child's page table too
print("ready", flush=True)
time.sleep(60)
"""
    parent = spawn([sys.executable, "-c", program], ready_lines=2).pid
    (child,) = (int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split())
    live_both = helper.Hashes().sample([parent, child])[1]
    live_parent = helper.Hashes().sample([parent])[1]
    live_child = helper.Hashes().sample([child])[1]
    assert live_both == live_parent + live_child - shared_pages


# ---- helper internals on synthetic and own data ---------------------------------------------


def pagemap_entry(
    present: bool = False,
    swapped: bool = False,
    soft_dirty: bool = False,
    file: bool = False,
    noise: bool = True,
) -> bytes:
    """One 64-bit entry. NOISE sets the PFN's top bits (48-54, beside bit 55) and bits 56 and 57
    (exclusively mapped, uffd-wp), which must not read as flags they are not."""
    bits = (0x7F << 48 | 1 << 56 | 1 << 57 | 0xABCDE) if noise else 0
    return struct.pack("<Q", bits | soft_dirty << 55 | file << 61 | swapped << 62 | present << 63)


def test_soft_dirty_counts_only_live_pages_with_bit_55() -> None:
    raw = b"".join(
        [
            pagemap_entry(present=True, soft_dirty=True),
            pagemap_entry(present=True),
            pagemap_entry(swapped=True, soft_dirty=True),
            pagemap_entry(swapped=True),
            pagemap_entry(soft_dirty=True),  # a hole in a mapping made since the clear
            pagemap_entry(noise=False),  # a hole
            pagemap_entry(present=True, soft_dirty=True, noise=False),
        ]
    )
    dirty, live = helper.soft_dirty_bits(raw[6::8], raw[7::8], shared=False)
    assert helper.count_marks(dirty, 7) == 3
    assert helper.count_marks(live, 7) == 5


def test_file_pages_are_live_in_shared_memory_only() -> None:
    """In a private mapping a present file page is unwritten: not yet copied, or the zero page."""
    raw = b"".join(
        [
            pagemap_entry(present=True, file=True, soft_dirty=True),
            pagemap_entry(present=True, file=True),
            pagemap_entry(present=True, soft_dirty=True),
        ]
    )
    private_dirty, private_live = helper.soft_dirty_bits(raw[6::8], raw[7::8], shared=False)
    shared_dirty, shared_live = helper.soft_dirty_bits(raw[6::8], raw[7::8], shared=True)
    assert (helper.count_marks(private_dirty, 3), helper.count_marks(private_live, 3)) == (1, 1)
    assert (helper.count_marks(shared_dirty, 3), helper.count_marks(shared_live, 3)) == (2, 3)
    assert [m.span() for m in helper.PRIVATE_RUNS.finditer(raw[7::8])] == [(2, 3)]
    assert [m.span() for m in helper.PRESENT_RUNS.finditer(raw[7::8])] == [(0, 3)]


def test_page_flags_reads_one_byte_pair_per_page_across_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helper, "PAGEMAP_WINDOW", 3)
    entries = [
        pagemap_entry(present=True, soft_dirty=True),
        pagemap_entry(swapped=True),
        pagemap_entry(),
        pagemap_entry(present=True),
        pagemap_entry(soft_dirty=True),
    ]
    pagemap = tmp_path / "pagemap"
    pagemap.write_bytes(bytes(8 * 10) + b"".join(entries))  # the mapping starts at page 10
    fd = os.open(pagemap, os.O_RDONLY)
    try:
        low, high = helper.page_flags(fd, 10 * PAGE, len(entries) + 2)  # 2 past the end
    finally:
        os.close(fd)
    assert [b & 0x80 for b in low] == [0x80, 0, 0, 0, 0x80, 0, 0]
    assert [b & 0xC0 for b in high] == [0x80, 0x40, 0, 0x80, 0, 0, 0]


def test_soft_dirty_counts_a_shared_page_once_and_clears_each_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = os.getpid(), os.getppid()  # real, for their pagemap files to open
    shm = ("shm", "00:01", 7)
    regions = {
        first: [(0x10000, 4, shm, 0)],
        second: [(0x20000, 4, shm, 0), (0x90000, 2, ("pid", second), 0x90)],
    }
    shm_clean, shm_dirty = (  # shared memory pages are file pages to pagemap
        pagemap_entry(present=True, file=True),
        pagemap_entry(present=True, file=True, soft_dirty=True),
    )
    clean, dirty, hole = (
        pagemap_entry(present=True),
        pagemap_entry(present=True, soft_dirty=True),
        pagemap_entry(),
    )
    flags = iter(
        [
            [shm_dirty, shm_clean, hole, hole],
            [shm_clean, shm_dirty, shm_clean, hole],
            [dirty, clean],
        ]
    )

    def page_flags(_fd: int, _address: int, _pages: int) -> tuple[bytes, bytes]:
        raw = b"".join(next(flags))
        return raw[6::8], raw[7::8]

    cleared: list[int] = []
    monkeypatch.setattr(helper, "writable_regions", regions.__getitem__)
    monkeypatch.setattr(helper, "page_flags", page_flags)
    monkeypatch.setattr(helper, "clear_soft_dirty", cleared.append)
    # Shared: pages 0 and 1 dirty through one mapper or the other, 0..2 live; private: 1 of 2.
    assert helper.SoftDirty().sample([first, second]) == (3, 5)
    assert cleared == [first, second]


def test_writable_regions_are_private_writable_and_shared_anonymous_memory(
    tmp_path: Path,
) -> None:
    def address(buffer: bytearray | mmap.mmap) -> int:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))

    me = os.getpid()
    private = bytearray(4 * MiB)
    backing = tmp_path / "file"
    backing.write_bytes(bytes(16 * PAGE))
    with (
        mmap.mmap(-1, 16 * PAGE) as shared,
        backing.open("r+b") as file,
        mmap.mmap(file.fileno(), 16 * PAGE) as shared_file,
    ):
        regions = helper.writable_regions(me)
        shared_at, private_at, file_at = address(shared), address(private), address(shared_file)
        maps = Path(f"/proc/{me}/maps").read_text().splitlines()
    (shared_region,) = [r for r in regions if r.address == shared_at]
    assert shared_region.pages == 16 and shared_region.space[0] == "shm"
    assert shared_region.first == 0
    assert any(
        r.address <= private_at < r.address + r.pages * PAGE
        and r.space == ("pid", me)
        and r.first == r.address // PAGE
        for r in regions
    )
    assert file_at not in {r.address for r in regions}  # the file holds that data, not a dump
    unwritable = {int(line.split("-")[0], 16) for line in maps if line.split()[1][1] != "w"}
    assert not unwritable & {r.address for r in regions}


def test_previous_digests_line_up_by_page_when_a_mapping_grows_or_merges() -> None:
    hashes = helper.Hashes()
    space = ("pid", 1)
    before = [(100, 10, array("I", range(1, 11))), (120, 5, array("I", range(21, 26)))]
    hashes.previous = {space: ([100, 120], before)}
    # Now one mapping from page 98 to 128: grown down by 2 (a stack), merged with the next.
    lined_up = hashes.lined_up(space, 98, 30)
    assert list(lined_up) == [0, 0, *range(1, 11), *[0] * 10, *range(21, 26), 0, 0, 0]
    assert list(hashes.lined_up(("pid", 2), 100, 3)) == [0, 0, 0]  # another process: all new


def test_argument_errors_come_as_an_error_line_with_status_2() -> None:
    status, lines = run_helper("--pid", "1", "--seconds", "-1")
    assert status == 2 and lines[0]["type"] == "error" and "--seconds" in lines[0]["message"]


# ---- operator side ---------------------------------------------------------------------------


def test_script_text_is_the_helper_source() -> None:
    assert script_text() == SCRIPT.read_text()


def test_helper_args_are_what_the_helper_parses() -> None:
    args = helper_args(42, 5, 0.5, "hash")
    assert args == ["--pid", "42", "--seconds", "5.0", "--interval", "0.5", "--method", "hash"]


@pytest.mark.parametrize(
    ("pid", "seconds", "interval", "method"),
    [(0, 1, 1, "auto"), (1, 0, 1, "auto"), (1, 1, -1, "auto"), (1, 1, 1, "guess")],
)
def test_helper_args_refuse_bad_input(
    pid: int, seconds: float, interval: float, method: str
) -> None:
    with pytest.raises(UsageError):
        helper_args(pid, seconds, interval, method)


def test_parse_line_reads_samples_and_hands_back_other_records() -> None:
    sample = parse_line(
        '{"type": "sample", "t": 12.5, "interval_s": 1.0, "dirty_pages": 2, "dirty_bytes": 8192,'
        ' "pages": 100, "cpu_s": 0.01, "pids": 1}'
    )
    assert sample == DirtySample(12.5, 1.0, 2, 8192, 100, 0.01)
    assert summarize("soft-dirty", [sample]).distinct_share is None  # the bits know no content
    with_content = parse_line(
        '{"type": "sample", "t": 12.5, "interval_s": 1.0, "dirty_pages": 2, "dirty_bytes": 8192,'
        ' "pages": 100, "cpu_s": 0.01, "pids": 1, "distinct_pages": 25}'
    )
    assert summarize("hash", [with_content]).distinct_share == 0.25
    error = {"type": "error", "message": "process 7 does not exist"}
    assert parse_line(json.dumps(error)) == error


@pytest.mark.parametrize(
    "line", ["not json", "[1, 2]", '{"type": "nonsense"}', '{"type": "sample", "t": 1}']
)
def test_parse_line_rejects_what_the_helper_never_sends(line: str) -> None:
    with pytest.raises(WhimbrelError):
        parse_line(line)


def test_summarize_takes_medians_so_one_odd_interval_does_not_count() -> None:
    samples = [
        DirtySample(1.0, 1.0, 256, 256 * 4096, 1000, 0.1),
        DirtySample(2.0, 1.0, 260, 260 * 4096, 1000, 0.2),
        DirtySample(3.0, 0.5, 5000, 5000 * 4096, 1200, 0.3),  # a burst
    ]
    report = summarize("hash", samples)
    assert report.pages_per_s == 260
    assert report.bytes_per_s == 260 * 4096
    assert report.cpu_s_per_sample == 0.2
    assert report.memory_bytes == 1200 * 4096
    assert report.method == "hash" and report.samples == tuple(samples)


def test_summarize_without_samples_fails() -> None:
    with pytest.raises(WhimbrelError):
        summarize("hash", [])
