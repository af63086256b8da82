"""A container's dirty rate, operator side: the node helper to send, and what it says back.

The measuring happens on the container's node, by `whimbrel/backends/remote/dirtyrate.py`, a
standard-library script sent over SSH and run as `python3 - ARGS` (see its docstring for the
methods and the output lines). This module hands out the script's text and arguments, reads
its JSON lines, and sums the samples up. No I/O beyond reading the script resource.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from whimbrel.backends.errors import UsageError, WhimbrelError

__all__ = [
    "METHODS",
    "DirtyReport",
    "DirtySample",
    "distinct_share",
    "helper_args",
    "parse_line",
    "script_text",
    "summarize",
]

METHODS = ("auto", "soft-dirty", "hash")
RECORD_TYPES = ("start", "end", "error")  # the lines parse_line hands back as they are


@dataclass(frozen=True)
class DirtySample:
    """The pages a container changed between two snapshots on its node."""

    t: float  # the node's monotonic clock when the closing snapshot started, s
    interval_s: float  # from the previous snapshot's start to this one's
    dirty_pages: int  # distinct pages changed in the interval
    dirty_bytes: int
    pages: int  # pages measured: the resident (or swapped) memory a dump carries
    cpu_s: float  # the helper's CPU time (user + system) on the node for this sample
    distinct_pages: int | None = None  # of `pages`, how many differ by content (hash method)


@dataclass(frozen=True)
class DirtyReport:
    method: str  # "soft-dirty" or "hash": what the node offered
    samples: tuple[DirtySample, ...]
    bytes_per_s: float  # median over the samples
    pages_per_s: float  # median over the samples
    cpu_s_per_sample: float  # median
    memory_bytes: int  # measured at the last sample
    # The share of those bytes a whole dump costs the link (a repeated page goes once); None
    # where the method reads no content (soft-dirty).
    distinct_share: float | None = None


def script_text() -> str:
    """The helper's source, to send to a node's python3 on stdin."""
    script = resources.files("whimbrel.backends.remote").joinpath("dirtyrate.py")
    return script.read_text(encoding="utf-8")


def helper_args(pid: int, seconds: float, interval: float = 1.0, method: str = "auto") -> list[str]:
    """The helper's arguments: PID and its descendants, for SECONDS, a sample every INTERVAL."""
    if pid <= 0:
        raise UsageError(f"dirty rate: not a process id: {pid}")
    if not (seconds > 0 and interval > 0):
        raise UsageError(
            f"dirty rate: seconds and interval must be positive: {seconds}, {interval}"
        )
    if method not in METHODS:
        raise UsageError(f"dirty rate: method must be one of {', '.join(METHODS)}: {method}")
    return [
        "--pid",
        str(pid),
        "--seconds",
        str(float(seconds)),
        "--interval",
        str(float(interval)),
        "--method",
        method,
    ]


def parse_line(line: str) -> DirtySample | dict:
    """One line of the helper's output: a sample, or the start, end or error record as a dict."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise WhimbrelError(f"dirty-rate helper sent an unreadable line: {line!r}") from exc
    kind = record.get("type") if isinstance(record, dict) else None
    if kind in RECORD_TYPES:
        return record
    if kind != "sample":
        raise WhimbrelError(f"dirty-rate helper sent an unknown line: {line!r}")
    try:
        return DirtySample(
            t=float(record["t"]),
            interval_s=float(record["interval_s"]),
            dirty_pages=int(record["dirty_pages"]),
            dirty_bytes=int(record["dirty_bytes"]),
            pages=int(record["pages"]),
            cpu_s=float(record["cpu_s"]),
            distinct_pages=None
            if record.get("distinct_pages") is None
            else int(record["distinct_pages"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WhimbrelError(f"dirty-rate helper sent a malformed sample: {line!r}") from exc


def summarize(method: str, samples: Sequence[DirtySample], page_size: int = 4096) -> DirtyReport:
    """Medians over SAMPLES, robust to one interval that a pause or a burst distorted.

    PAGE_SIZE is the node's, from the helper's start line (4096 on x86-64; some arm64 kernels
    use 16 or 64 KiB).
    """
    if not samples:
        raise WhimbrelError("the dirty-rate helper returned no samples")
    return DirtyReport(
        method=method,
        samples=tuple(samples),
        bytes_per_s=statistics.median(s.dirty_bytes / s.interval_s for s in samples),
        pages_per_s=statistics.median(s.dirty_pages / s.interval_s for s in samples),
        cpu_s_per_sample=statistics.median(s.cpu_s for s in samples),
        memory_bytes=samples[-1].pages * page_size,
        distinct_share=distinct_share(samples[-1]),
    )


def distinct_share(sample: DirtySample) -> float | None:
    if sample.distinct_pages is None or not sample.pages:
        return None
    return min(1.0, max(sample.distinct_pages, 1) / sample.pages)
