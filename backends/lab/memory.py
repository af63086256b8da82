"""Memory the lab frees stays its own while the lab is up.

On a VM whose balloon driver reports free pages to the host (virtio-balloon free page
reporting), memory freed in the guest goes back to the host, and whatever touches it next
waits for the host to back it again. On this project's machines that ran at 420 MB/s (1.5 GiB
of anonymous memory touched in 3.6 s): a restore, which is CRIU filling the container's
memory, then took 0.8 s or 3.1 s for the same 1 GiB, depending on how much memory happened to
be freed just before it. A real node's free memory is its own, so while the lab is up page
reporting is off (an order above any the kernel reports), and `down` puts the old one back.

Memory reported before the lab came up is still the host's: touched for the first time it ran
at 2.2-3.2 s a GiB, against 0.16 s for memory the lab had used (measured with the lab up after
a grid). The first 1 GiB restores after `up` paid that (hand-overs 0.6-1.0 s longer than the
same point's later ones), so `up` touches enough free memory for the grid's largest point and
frees it again: with reporting off it stays backed, and a freed page is the next one handed out.
"""

from __future__ import annotations

import mmap
import time
from pathlib import Path

GiB = 2**30
# The grid's largest point at once: a 1 GiB container at the source and one restoring at the
# target, its staged rounds in the page cache, and room beside them.
WARM = 6 * GiB
SPARE = 2 * GiB  # never take the machine's last memory to do it

REPORTING_ORDER = Path("/sys/module/page_reporting/parameters/page_reporting_order")
OFF = "11"  # above MAX_PAGE_ORDER (10): no free block is large enough to be reported


def hold_freed_memory(saved: Path, knob: Path = REPORTING_ORDER) -> str | None:
    """Turn page reporting off, keeping the order it had in `saved`; returns what happened
    (None where the kernel has no page reporting: nothing to do)."""
    try:
        before = knob.read_text().strip()
    except OSError:
        return None
    if before == OFF:
        return "page reporting already off"
    saved.write_text(before)
    try:
        knob.write_text(OFF)
    except OSError as exc:
        saved.unlink()
        return f"page reporting stays on (order {before}): {exc.strerror}"
    return f"page reporting off while the lab is up (order {before} on `down`)"


def release_freed_memory(saved: Path, knob: Path = REPORTING_ORDER) -> None:
    """Put back the page reporting order hold_freed_memory() found, if it changed it."""
    try:
        before = saved.read_text().strip()
    except FileNotFoundError:
        return
    knob.write_text(before)
    saved.unlink()


def back_free_memory(size: int = WARM, meminfo: Path = Path("/proc/meminfo")) -> str:
    """Touch `size` of free memory (at most what is available less SPARE) and free it again,
    so that the host backs it now rather than during a measured restore."""
    size = min(size, _available(meminfo) - SPARE) // mmap.PAGESIZE * mmap.PAGESIZE
    if size <= 0:
        return "too little free memory to back ahead"
    chunk = memoryview(bytes(64 * 2**20))  # sliced without a copy
    started = time.perf_counter()
    with mmap.mmap(-1, size) as memory:
        for offset in range(0, size, len(chunk)):
            memory.write(chunk[: size - offset])
    return f"{size / GiB:.1f} GiB of free memory backed in {time.perf_counter() - started:.1f} s"


def _available(meminfo: Path) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
