"""Backends on the real lab: connecting every node, listing 4 nodes x 50 containers, and the
node CPU one dirty-rate sample costs per MiB of container memory.

Run (as root, lab up): .venv/bin/python benchmarks/backends.py
Prints the figures and writes bench-results/backends.json. Goal: the list under 1.5 s.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from whimbrel.backends.config import load_config
from whimbrel.backends.inventory import fetch_inventory
from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import MEMWRITER_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.probes import measure_dirty
from whimbrel.backends.ssh import SessionPool

PER_NODE = 50
OUT = Path(__file__).resolve().parents[1] / "bench-results" / "backends.json"


def _fill(node) -> None:
    for i in range(PER_NODE):
        docker(node.docker_host, "run", "-d", "--name", f"bench-{i}", "--network", "none",
                MEMWRITER_IMAGE, "memwriter", "--size", "1MiB", "--rate", "0")  # fmt: skip


def _empty(node) -> None:
    names = [f"bench-{i}" for i in range(PER_NODE)]
    docker(node.docker_host, "rm", "-f", *names, check=False)


async def measure(config_path: Path) -> dict:
    config = load_config(config_path)
    async with SessionPool(config) as pool:
        t0 = time.perf_counter()
        await asyncio.gather(*(pool.session(n).connection() for n in config.nodes))
        connect_s = time.perf_counter() - t0
        lists = []
        for _ in range(5):
            t0 = time.perf_counter()
            inventory = await fetch_inventory(pool)
            lists.append(time.perf_counter() - t0)
        hot = inventory.resolve("hot")
        report = await measure_dirty(pool, hot, seconds=5)
    mib = report.memory_bytes / 2**20
    return {
        "nodes": len(config.nodes),
        "containers": len(inventory.containers),
        "connect_all_s": connect_s,
        "list_s_median": statistics.median(lists),
        "list_s_all": lists,
        "dirty_method": report.method,
        "dirty_cpu_s_per_sample": report.cpu_s_per_sample,
        "dirty_memory_mib": mib,
        "dirty_cpu_ms_per_mib": report.cpu_s_per_sample * 1000 / mib,
    }


def main() -> None:
    status = lab.status()
    if not status["up"]:
        raise SystemExit("the lab is not up: `whimbrel lab up` (as root) first")
    nodes = build_topology(tuple((c, 2) for c in ("east", "west"))).nodes
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(_fill, nodes))
    try:
        result = asyncio.run(measure(Path(status["config"])))
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(_empty, nodes))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"connect {result['nodes']} nodes concurrently: {result['connect_all_s'] * 1000:.0f} ms")
    print(
        f"list {result['containers']} containers on {result['nodes']} nodes: "
        f"{result['list_s_median'] * 1000:.0f} ms median of 5 (goal < 1500 ms)"
    )
    print(
        f"dirty-rate sample ({result['dirty_method']}): "
        f"{result['dirty_cpu_ms_per_mib']:.2f} ms of node CPU per MiB "
        f"({result['dirty_memory_mib']:.0f} MiB measured)"
    )
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
