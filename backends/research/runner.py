"""`whimbrel bench`: real migrations on the lab over a grid of link and workload settings, one
per policy, to measure the seed paper's claim (latency-aware iteration shortens downtime) and
how well the model predicts.

Every run appends one JSON line to the results file as soon as it ends, so a grid that takes
hours can stop and resume: runs already in the file are skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from whimbrel.backends.config import load_config
from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.engine import Migration, MigrationRequest
from whimbrel.backends.events import MigrationFinished
from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import MEMWRITER_IMAGE, REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.lab.workloads import (
    Redis,
    WriteLoad,
    load_redis,
    memwriter_status,
    preload_writes,
)
from whimbrel.backends.research.grid import Point, run_order
from whimbrel.backends.research.runs import done_keys
from whimbrel.backends.ssh import SessionPool

NAME = "bench"
MEMWRITER_PORT, REDIS_PORT = 7280, 6385
REDIS_WRITES_PER_S = 200
# Redis is loaded with 2^18 keys: the write load's first new key grows the key table, and the
# rehash after it dirtied ~9 MB/s for 5-7 s (measured at 256 MiB, against 0.1 MB/s idle), which
# only the first policy at a point would migrate through. Its keys go in before, for longer
# than any migration lasts, and the rehash is left to end.
WRITES_AHEAD_S, REHASH_SETTLE_S = 300, 15


NODES = ("east-1", "west-1")


def _docker(node_name: str, *args: str, check: bool = True) -> None:
    docker(build_topology().node(node_name).docker_host, *args, check=check)


def start_workload(point: Point, node_name: str) -> None:
    """The point's workload on `node_name`, loaded and answering."""
    node = build_topology().node(node_name)
    if point.workload == "memwriter":
        _docker(
            node_name,
            "run", "-d", "--name", NAME, "--network", "host", MEMWRITER_IMAGE,
            "memwriter", "--size", f"{point.size_mib}MiB", "--hot", f"{point.size_mib}MiB",
            "--rate", str(int(point.dirty_rate)), "--port", str(MEMWRITER_PORT),
        )  # fmt: skip
        _wait(lambda: memwriter_status(node.lan_address, MEMWRITER_PORT))
        return
    _docker(
        node_name,
        "run", "-d", "--name", NAME, "--network", "host", REDIS_IMAGE,
        "redis-server", REDIS_CONF, "--port", str(REDIS_PORT),
    )  # fmt: skip
    keys = point.size_mib * 1024  # 1 KiB values
    values = point.workload.partition("-")[2] or "keyed"  # redis-same: "same"
    _wait(lambda: load_redis(node.lan_address, REDIS_PORT, keys, value_size=1024, values=values))
    preload_writes(node.lan_address, REDIS_PORT, REDIS_WRITES_PER_S * WRITES_AHEAD_S)
    time.sleep(REHASH_SETTLE_S)


def _load(point: Point) -> WriteLoad | None:
    """Redis's client writing through the migration (it follows the container)."""
    if point.workload == "memwriter":
        return None
    addresses = [(build_topology().node(n).lan_address, REDIS_PORT) for n in NODES]
    return WriteLoad(addresses, REDIS_WRITES_PER_S).__enter__()


def workload_serving(point: Point, node_name: str) -> bool:
    """The workload answers on `node_name` with its state intact: memwriter verifies its own
    checksum over the whole state; redis holds every key loaded."""
    address = build_topology().node(node_name).lan_address
    try:
        if point.workload == "memwriter":
            return bool(memwriter_status(address, MEMWRITER_PORT, verify=True, timeout=60).verified)
        with Redis(address, REDIS_PORT) as client:  # every loaded key still there
            keys = client.command("DBSIZE")
            return isinstance(keys, int) and keys >= point.size_mib * 1024
    except OSError:
        return False


def _wait(probe: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def clean_workloads() -> None:
    for node in NODES:
        _docker(node, "rm", "-f", NAME, check=False)


async def _migrate(
    config_path: Path, src: str, dst: str, policy: str, lazy_restore: bool
) -> MigrationFinished:
    config = load_config(config_path)
    async with SessionPool(config) as pool:
        request = MigrationRequest(
            f"{src}/{NAME}", dst, policy=policy, max_rounds=12, lazy_restore=lazy_restore
        )
        finished = None
        async for event in Migration(pool, request).events():
            if isinstance(event, MigrationFinished):
                finished = event
        assert finished is not None
        return finished


def _row(
    point: Point,
    attempt: tuple[str, int, int, str, str],
    finished: MigrationFinished,
    load: WriteLoad | None,
    serving: bool,
) -> dict[str, Any]:
    policy, repeat, position, src, dst = attempt
    record = json.loads(Path(finished.record).read_text()) if finished.record else {}
    timing = record.get("timing") or {}
    handover = record.get("handover_result") or {}
    return {
        "point": point.key,
        **asdict(point),
        "policy": policy,
        "repeat": repeat,
        "position": position,  # migrations the container had made before this one
        "src": src,
        "dst": dst,
        "ok": finished.ok and serving,
        "error": finished.error or (None if serving else f"not serving on {dst} afterwards"),
        "downtime_s": finished.downtime_s,
        "predicted_downtime_s": finished.predicted_downtime_s,
        "downtime_parts": _parts(finished.downtime_parts),
        "lazy_restore": finished.lazy_restore,
        "lazy_fill_s": finished.lazy_fill_s,
        "criu_restore_s": handover.get("criu_restore_s"),
        # By the target's clock against the source's: exact where they agree (the lab's nodes
        # share one), a check on downtime_parts' answer (half the RTT) there.
        "served_by_clocks_s": (
            handover["served_at"] - handover["frozen_at"]
            if handover.get("served_at") and handover.get("frozen_at")
            else None
        ),
        "predicted_downtime_parts": _parts(finished.predicted_downtime_parts),
        "replanned_downtime_s": (record.get("last_plan") or {}).get("downtime_s"),
        "rounds": finished.rounds,
        "predicted_rounds": (record.get("plan") or {}).get("rounds"),
        "brownouts_s": list(finished.brownouts_s),
        "total_time_s": finished.total_time_s,
        "migration_s": timing.get("rounds_s"),
        "preflight_s": timing.get("preflight_s"),
        "predicted_total_time_s": finished.predicted_total_time_s,
        "bytes_sent": finished.bytes_sent,
        "predicted_bytes": finished.predicted_bytes,
        "client_longest_gap_s": load.longest_gap_s if load is not None else None,
        "stripes": (record.get("link") or {}).get("stripes"),
        "inputs": record.get("inputs"),
        "measured_rounds": record.get("measured_rounds", []),
        "at": time.time(),
    }


def _parts(parts: DowntimeParts | None) -> dict[str, float] | None:
    return asdict(parts) if parts is not None else None


def run_grid(
    points: list[Point],
    policies: tuple[str, ...],
    repeats: int,
    results: Path,
    say: Callable[[str], None],
    lazy_restore: bool = False,
) -> int:
    """Run what the results file does not hold yet; returns how many runs were made.

    Every point gets its first repeat before any point gets its second, so a grid cut short
    still covers as much of the grid as it can. Within a (point, repeat) one container goes
    back and forth between east-1 and west-1, a migration per policy; odd repeats start on
    west-1, so each policy moves both ways across repeats."""

    status = lab.status()
    if not status["up"]:
        raise lab.LabError("the lab is not up: `whimbrel lab up` (as root) first")
    config = Path(status["config"])
    results.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(results)
    made = 0
    try:
        for repeat in range(repeats):
            order = run_order(policies, repeat)
            for point in points:
                todo = [p for p in order if (point.key, p, repeat) not in done]
                if todo:
                    made += _run_point(point, todo, repeat, config, results, say, lazy_restore)
    finally:
        clean_workloads()
        lab.set_wan(status["rtt_ms"], status["bandwidth_mbit"])
    return made


def _run_point(
    point: Point,
    policies: list[str],
    repeat: int,
    config: Path,
    results: Path,
    say: Callable[[str], None],
    lazy_restore: bool,
) -> int:
    lab.set_wan(point.rtt_ms, point.bandwidth_mbit)
    clean_workloads()
    src, dst = NODES if repeat % 2 == 0 else NODES[::-1]
    start_workload(point, src)
    for position, policy in enumerate(policies):
        load = _load(point)
        try:
            finished = asyncio.run(_migrate(config, src, dst, policy, lazy_restore))
        finally:
            if load is not None:
                load.stop()
        where = dst if finished.ok else src
        serving = workload_serving(point, where)
        row = _row(point, (policy, repeat, position, src, dst), finished, load, serving)
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        say(
            f"{point.key} {policy} #{repeat} {src}->{dst}: "
            + (
                f"downtime {row['downtime_s']:.2f} s (predicted "
                f"{row['predicted_downtime_s']:.2f}), {row['rounds']} rounds"
                + (f"; {finished.downtime_parts.summary()}" if finished.downtime_parts else "")
                if row["ok"]
                else f"FAILED: {row['error']}"
            )
        )
        if not serving:  # lost it: start afresh for the next policy
            clean_workloads()
            start_workload(point, where)
        src, dst = (where, dst if where == src else src)
    clean_workloads()
    return len(policies)
