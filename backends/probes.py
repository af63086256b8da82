"""Probes of the path a migration will take, run on the nodes themselves.

- RTT from node X to node Y: on X, an application-level round trip to Y's sshd at its
  `wan_address` (our SSH banner out, Y's key-exchange reply back, on a live connection: no
  login, no ICMP, and not fooled by a relay answering TCP handshakes). The few hundred
  microseconds Y's sshd takes to reply are measured on Y against itself and taken off.
- Throughput from X to Y: a bounded stream over the node-to-node SSH link a migration uses.
- The operator's own round trip to a node: opening a channel on the live connection.
Results are timestamped samples, so the console can chart them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from whimbrel.backends import dirty
from whimbrel.backends.channel import NodeLink, open_link
from whimbrel.backends.config import Node
from whimbrel.backends.dirty import DirtySample
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.ssh import SessionPool, remote_script

DEFAULT_RTT_SAMPLES = 7
DEFAULT_THROUGHPUT_BYTES = 32 * 1024 * 1024
MAX_PROBE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RttSample:
    t: float  # wall-clock time of the sample
    rtt_s: float


@dataclass(frozen=True)
class RttResult:
    src: str
    dst: str
    rtt_s: float  # median, less the target's own reply time
    reply_s: float  # the target's own reply time, measured on itself
    samples: tuple[RttSample, ...]


@dataclass(frozen=True)
class ThroughputResult:
    src: str
    dst: str
    t: float
    bytes: int
    elapsed_s: float
    rtt_s: float
    bytes_per_s: float  # over the elapsed time less one RTT (first byte out, answer back)
    stripes: int = 1  # SSH streams in parallel, as a migration over this path would use

    @property
    def mbit_per_s(self) -> float:
        return self.bytes_per_s * 8 / 1e6


async def _rtt_samples(pool: SessionPool, on: Node, host: str, port: int, count: int) -> list:
    lines = pool.session(on).stream_python(
        remote_script("probe.py"), ["rtt", host, str(port), str(count)], timeout=30 + count * 5
    )
    async with aclosing(lines):
        samples = [json.loads(line) async for line in lines]
    good = [s for s in samples if "rtt_s" in s]
    if not good:
        errors = {s.get("error", "?") for s in samples}
        raise WhimbrelError(f"{on.name}: cannot reach {host}:{port}: {', '.join(errors)}")
    return good


async def probe_rtt(
    pool: SessionPool, src: Node, dst: Node, count: int = DEFAULT_RTT_SAMPLES
) -> RttResult:
    far, near = await asyncio.gather(
        _rtt_samples(pool, src, dst.wan_address, dst.port, count),
        _rtt_samples(pool, dst, dst.host, dst.port, count),
    )
    reply_s = statistics.median(s["rtt_s"] for s in near)
    samples = tuple(RttSample(s["t"], max(0.0, s["rtt_s"] - reply_s)) for s in far)
    return RttResult(
        src.name, dst.name, statistics.median(s.rtt_s for s in samples), reply_s, samples
    )


def probe_bytes(n_bytes: int, link: NodeLink) -> int:
    """Each stripe carries `n_bytes` (64 MiB at most in all): as long a stream as one stream
    alone would get."""
    return max(n_bytes, min(n_bytes * link.stripes, MAX_PROBE_BYTES))


async def measure_link_throughput(
    pool: SessionPool, link: NodeLink, n_bytes: int, rtt_s: float
) -> float:
    """Bytes per second of a bounded stream over an open link's stripes (the path a round
    takes), one RTT taken off the elapsed time (the first byte's way out and the answer's way
    back)."""
    result = await pool.session(link.src).run_helper(
        "source.py",
        ["probe-send", str(probe_bytes(n_bytes, link)), json.dumps(link.argvs())],
        what=f"throughput to {link.dst.name}",
        timeout=600,
    )
    return result["bytes"] / max(result["elapsed_s"] - rtt_s, 1e-6)


async def probe_throughput(
    pool: SessionPool,
    src: Node,
    dst: Node,
    n_bytes: int = DEFAULT_THROUGHPUT_BYTES,
    rtt_s: float | None = None,
) -> ThroughputResult:
    if rtt_s is None:
        rtt_s = (await probe_rtt(pool, src, dst)).rtt_s
    async with open_link(pool, src, dst) as opened:
        link = opened.for_rtt(rtt_s)
        started = time.time()
        rate = await measure_link_throughput(pool, link, n_bytes, rtt_s)
    sent = probe_bytes(n_bytes, link)
    return ThroughputResult(
        src.name, dst.name, started, sent, sent / rate + rtt_s, rtt_s, rate, link.stripes
    )


async def stream_dirty(
    pool: SessionPool, container: ContainerInfo, seconds: float, interval: float = 1.0
) -> AsyncIterator[DirtySample | dict]:
    """The dirty-rate helper's output on the container's node: the start record (with the
    method), then one DirtySample per interval."""
    if container.pid is None:
        raise WhimbrelError(f"{container.ref} is not running")
    node = pool.config.node(container.node)
    lines = pool.session(node).stream_python(
        dirty.script_text(),
        dirty.helper_args(container.pid, seconds, interval),
        timeout=seconds + 60,
    )
    async with aclosing(lines):
        async for line in lines:
            record = dirty.parse_line(line)
            if isinstance(record, dict) and record.get("type") == "error":
                raise WhimbrelError(f"{container.ref}: dirty rate: {record.get('message')}")
            yield record


async def measure_dirty(
    pool: SessionPool, container: ContainerInfo, seconds: float, interval: float = 1.0
) -> dirty.DirtyReport:
    method, page_size, samples = "?", 4096, []
    async for record in stream_dirty(pool, container, seconds, interval):
        if isinstance(record, dirty.DirtySample):
            samples.append(record)
        elif record.get("type") == "start":
            method, page_size = record.get("method", "?"), record.get("page_size", 4096)
    return dirty.summarize(method, samples, page_size)


async def operator_rtt(pool: SessionPool, node: Node, count: int = 3) -> float:
    """The operator's round trip to a node: a channel open and close on the live connection."""
    session = pool.session(node)
    await session.connection()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        async with session.unix_stream(node.docker_socket):
            times.append(time.perf_counter() - t0)
    return statistics.median(times)
