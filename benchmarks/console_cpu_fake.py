"""Benchmark (not a test): the console's idle CPU without the lab, on the fake backend.

What benchmarks/console_cpu.py measures on the lab, here in a few minutes and on any machine:
the console in a pseudo-terminal (120x40) on tests/console/fake_backend.py given the lab's
cadence and scale. Every node's inventory 5 s after its last answer, which takes 0.1-0.5 s
(so the nodes' rounds drift apart), each container's memory a few pages more or less at each
answer, as cgroups read; an RTT probe of the selected path each second (three samples, a
millisecond or so apart); a dirty-rate sample of the selected container each second; all
stamped with the wall clock. 4 nodes x 5 containers, and 20 nodes x 10.
Per scale and screen (a fresh console each): CPU time of the console process (all its
threads, from /proc) and its output to the terminal over the window. Goal: under 5% of one
core on every screen. The figures are the console's own work: the fake answers without SSH,
whose sessions cost the console some more on the lab.

`--profile DIR` also writes a cProfile of the console's main thread over each window
(DIR/SCALE-SCREEN.prof; the profiler's overhead inflates that run's CPU figure).

Run from the repo root: .venv/bin/python -m benchmarks.console_cpu_fake [--window 30]
    [--screens main,preview,...] [--scales 4x5,20x10] [--profile DIR]
Prints a summary and writes bench-results/console-fake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from benchmarks.console_cpu import COLUMNS, ROWS, Console
from tests.console.fake_backend import FakeBackend, MiB
from whimbrel.app.console import WhimbrelApp
from whimbrel.app.planning import DirtyRate
from whimbrel.app.settings import ConsoleSettings, RememberedState
from whimbrel.backends.config import parse_config
from whimbrel.backends.inventory import ContainerInfo, NodeInventory
from whimbrel.backends.probes import RttResult, RttSample, ThroughputResult

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results" / "console-fake.json"
GOAL_PERCENT = 5.0
RTT_S = 0.040  # the lab's WAN path
# The keys that reach each screen from the main one, and how long its own start-up work
# (the preview's throughput probe, the evacuation's measuring) may take.
SCREENS: dict[str, tuple[bytes, float]] = {
    "main": (b"", 3.0),
    "preview": (b"p", 5.0),
    "history": (b"h", 3.0),
    "help": (b"?", 3.0),
    "evacuate": (b" e", 15.0),
}


# --- the console (child process) -------------------------------------------------------------


class CadenceBackend(FakeBackend):
    """The fake backend at the lab's cadence and scale: `nodes` nodes in two clusters,
    `per_node` small Redis on each, every answer stamped with the wall clock."""

    def __init__(self, nodes: int, per_node: int) -> None:
        names = [f"{side}-{i + 1}" for side in ("east", "west") for i in range(nodes // 2)]
        config = parse_config(
            {
                "clusters": {"east": {}, "west": {}},
                "nodes": [
                    {"name": n, "cluster": n.split("-")[0], "address": f"198.18.{i}.10"}
                    for i, n in enumerate(names)
                ],
            },
            ROOT / "config.toml",
        )
        containers = [
            ContainerInfo(
                id=f"{node}{i:04x}{'0' * 56}",
                name=f"scale-{i}",
                image="whimbrel-lab/redis:7",
                state="running",
                status="Up 3 hours",
                node=node,
                cluster=node.split("-")[0],
                memory_bytes=(3 + i % 4) * MiB,
                pid=1000 + i,
            )
            for node in names
            for i in range(per_node)
        ]
        super().__init__(config, unreachable=(), containers=containers)
        self.answers: dict[str, int] = dict.fromkeys(names, 0)

    async def node_inventory(self, node: str) -> NodeInventory:
        self.answers[node] += 1
        answer = self.answers[node]
        # Not always as fast: the nodes' rounds drift apart, as on the lab, and their answers
        # come spread over the refresh interval.
        await asyncio.sleep(0.1 + (answer * 7 + len(node) + int(node[-1])) % 9 * 0.05)
        inventory = await super().node_inventory(node)
        # As a cgroup's usage reads from one answer to the next: a few pages more or less,
        # enough to change the three figures the table shows of most containers.
        moved = tuple(
            replace(c, memory_bytes=(c.memory_bytes or 0) + ((answer + i) % 5 - 2) * 12_288)
            for i, c in enumerate(inventory.containers)
        )
        return NodeInventory(
            node, inventory.cluster, True, moved, elapsed_s=0.05, memory_available=4 << 30
        )

    async def rtt(self, src: str, dst: str) -> RttResult:
        # The lab's path wobbles by a millisecond or so: each probe's figure reads otherwise.
        self.rtt_calls += 1
        now = time.time()
        await asyncio.sleep(3 * RTT_S)
        rtts = [RTT_S + ((self.rtt_calls * 7 + i * 3) % 11) * 1e-4 for i in range(3)]
        samples = tuple(RttSample(now + i * RTT_S, rtt) for i, rtt in enumerate(rtts))
        return RttResult(src, dst, statistics.median(rtts), 0.0002, samples)

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult:
        await asyncio.sleep(1.4)
        return ThroughputResult(src, dst, time.time(), 32 * MiB, 1.4, rtt_s, 24e6)

    async def dirty(self, container: ContainerInfo, interval_s: float) -> AsyncIterator[DirtyRate]:
        i = 0
        while True:
            await asyncio.sleep(interval_s)
            rate = 300 * 1024 * (1 + 0.15 * ((i * 5) % 7 - 3) / 3)
            yield DirtyRate(time.time(), rate / 4096, rate, float(container.memory_bytes or MiB))
            i += 1


def run_console(nodes: int, per_node: int, workdir: Path, profile: Path | None) -> int:
    app = WhimbrelApp(
        CadenceBackend(nodes, per_node),
        config_path=ROOT / "config.toml",
        settings=ConsoleSettings(refresh_s=5.0, rtt_every_s=1.0),
        # Not read-only: a read-only console refuses to open the evacuate screen (and nothing
        # starts here unconfirmed).
        read_only=False,
        remembered=RememberedState(workdir / "console.json"),
        watch_terminal=True,
        timings=workdir / "timings.jsonl",
    )
    if profile is None:
        return app.run() or 0
    # SIGUSR1 starts the profile at the window's start (Textual's loop runs in this thread);
    # it is written when the console quits.
    profiler = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    try:
        return app.run() or 0
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


# --- the measurement (parent process) --------------------------------------------------------


def idle(scale: str, screen: str, window: float, profile_dir: Path | None) -> dict[str, float]:
    """A fresh console on `screen`, its CPU and terminal output over `window` seconds."""
    profile = profile_dir / f"{scale}-{screen}.prof" if profile_dir else None
    with tempfile.TemporaryDirectory(prefix="whimbrel-bench-") as tmp:
        argv = [sys.executable, "-m", "benchmarks.console_cpu_fake", "--child", scale, tmp]
        console = Console.spawn(argv + ([str(profile)] if profile else []), dict(os.environ),
                                Path(tmp) / "timings.jsonl")  # fmt: skip
        # The profile covers the window only (SIGUSR1 starts it).
        start = (lambda: os.kill(console.pid, signal.SIGUSR1)) if profile else (lambda: None)
        return console.idle(*SCREENS[screen], window, start)


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        nodes, per_node = (int(n) for n in sys.argv[2].split("x"))
        profile = Path(sys.argv[4]) if len(sys.argv) > 4 else None
        return run_console(nodes, per_node, Path(sys.argv[3]), profile)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0, help="idle window, s (30)")
    parser.add_argument("--screens", default=",".join(SCREENS), help="idle CPU on these screens")
    parser.add_argument("--scales", default="4x5,20x10", help="NODESxCONTAINERS, comma-separated")
    parser.add_argument("--profile", type=Path, help="write a cProfile of each window here")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for scale in args.scales.split(","):
        results[scale] = {}
        for screen in args.screens.split(","):
            if screen not in SCREENS:
                raise SystemExit(f"console_cpu_fake: no screen {screen!r} ({', '.join(SCREENS)})")
            found = results[scale][screen] = idle(scale, screen, args.window, args.profile)
            print(
                f"{scale:>6} {screen:<9} {found['idle_cpu_percent_of_one_core']:5.2f}% of one "
                f"core, {found['terminal_output_bytes_per_s']} B/s to the terminal",
                flush=True,
            )
    worst = max(s["idle_cpu_percent_of_one_core"] for r in results.values() for s in r.values())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "console_cpu_fake",
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "terminal": f"{COLUMNS}x{ROWS}",
                "charts_hz": 1.0,
                "inventory_every_s": 5.0,
                "profiled": bool(args.profile),
                "scales": results,
                "idle_cpu_goal_percent": GOAL_PERCENT,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"idle CPU: at most {worst:.2f}% of one core (goal < {GOAL_PERCENT:g}%)\n"
        f"written {RESULTS.relative_to(ROOT)}"
    )
    return 0 if worst < GOAL_PERCENT else 1


if __name__ == "__main__":
    sys.exit(main())
