"""`whimbrel demo`: the local lab (brought up if it is not up: root needed), then the console
on it. The console itself is imported only when it opens, so `whimbrel --help` stays headless.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from whimbrel.backends.lab import lab
from whimbrel.backends.lab.topology import DEFAULT_NODES, build_topology
from whimbrel.backends.units import parse_bandwidth, parse_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="bring the local lab up if needed and open the console on it (root)"
    )
    parser.add_argument(
        "--rtt",
        default=f"{lab.DEFAULT_RTT_MS:g}ms",
        help="RTT between the clusters, when the lab has to be brought up (%(default)s)",
    )
    parser.add_argument(
        "--bandwidth",
        default=f"{lab.DEFAULT_BANDWIDTH_MBIT:g}Mbit",
        help="bandwidth between the clusters, when the lab has to be brought up (%(default)s)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=argparse.SUPPRESS,  # absent here: `whimbrel --read-only demo` still counts
        help="open the console read-only: no migration can start from it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = lab.status()
    if not state["up"]:
        lab.require_root()  # a clear UsageError when not root
        wan = lab.WanSettings(
            rtt_ms=parse_duration(args.rtt, "--rtt") * 1000,
            bandwidth_mbit=parse_bandwidth(args.bandwidth, "--bandwidth") * 8 / 1e6,
        )
        print("demo: the lab is not up; bringing it up (a minute or two)", flush=True)
        state = lab.up(build_topology(DEFAULT_NODES), wan, lambda line: print(f"lab: {line}"))
    from whimbrel.app.launch import run_console

    return run_console(Path(state["config"]), read_only=args.read_only)
