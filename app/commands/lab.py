"""`whimbrel lab up|down|status|wan`: the local multi-cluster lab (root only)."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.output import print_table
from whimbrel.backends.lab import lab
from whimbrel.backends.lab.topology import DEFAULT_NODES, build_topology, parse_nodes_spec
from whimbrel.backends.units import parse_bandwidth, parse_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab", help="the local lab: clusters of real nodes on this machine"
    )
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    default_nodes = ",".join(f"{c}={n}" for c, n in DEFAULT_NODES)
    p_up = sub.add_parser("up", help="build the lab (replaces any previous one)")
    p_up.add_argument(
        "--nodes", default=default_nodes, help=f"clusters and node counts ({default_nodes})"
    )
    p_up.add_argument(
        "--rtt", default=f"{lab.DEFAULT_RTT_MS:g}ms", help="round-trip time between clusters"
    )
    p_up.add_argument(
        "--bandwidth",
        default=f"{lab.DEFAULT_BANDWIDTH_MBIT:g}Mbit",
        help="bandwidth between clusters",
    )
    p_up.add_argument("--json", action="store_true", help="print the status as JSON when up")
    p_up.set_defaults(func=run_up)

    p_down = sub.add_parser("down", help="remove everything the lab made (safe to repeat)")
    p_down.set_defaults(func=run_down)

    p_status = sub.add_parser("status", help="where the lab's config and keys are, and its nodes")
    p_status.add_argument("--json", action="store_true", help="print JSON")
    p_status.set_defaults(func=run_status)

    p_wan = sub.add_parser("wan", help="change the WAN of the running lab")
    p_wan.add_argument("--rtt", help="round-trip time between clusters, e.g. 80ms")
    p_wan.add_argument("--bandwidth", help="bandwidth between clusters, e.g. 100Mbit")
    p_wan.add_argument("--json", action="store_true", help="print JSON")
    p_wan.set_defaults(func=run_wan)


def _wan_from(args: argparse.Namespace) -> tuple[float | None, float | None]:
    rtt = None if args.rtt is None else parse_duration(args.rtt, "--rtt") * 1000
    bw = (
        None if args.bandwidth is None else parse_bandwidth(args.bandwidth, "--bandwidth") * 8 / 1e6
    )
    return rtt, bw


def _say(line: str) -> None:
    print(f"lab: {line}", flush=True)


def run_up(args: argparse.Namespace) -> int:
    rtt, bw = _wan_from(args)
    topology = build_topology(parse_nodes_spec(args.nodes))
    wan = lab.WanSettings(rtt_ms=rtt, bandwidth_mbit=bw)  # type: ignore[arg-type]
    state = lab.up(topology, wan, progress=(lambda _line: None) if args.json else _say)
    _show(state, args.json)
    return 0


def run_down(args: argparse.Namespace) -> int:
    lab.down(_say)
    _say("down")
    return 0


def run_status(args: argparse.Namespace) -> int:
    state = lab.status()
    _show(state, args.json)
    return 0 if state["up"] else 1


def run_wan(args: argparse.Namespace) -> int:
    rtt, bw = _wan_from(args)
    result = lab.set_wan(rtt, bw)
    if args.json:
        print(json.dumps(result))
    else:
        _say(f"wan: {result['rtt_ms']:g} ms RTT, {result['bandwidth_mbit']:g} Mbit/s")
    return 0


def _show(state: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, indent=2))
        return
    if not state["up"]:
        print("lab: not up (run `whimbrel lab up` as root)")
        return
    print(f"config:      {state['config']}")
    print(f"ssh key:     {state['ssh_key']}")
    print(f"known_hosts: {state['known_hosts']}")
    print(f"wan:         {state['rtt_ms']:g} ms RTT, {state['bandwidth_mbit']:g} Mbit/s")
    print_table(
        ("NODE", "CLUSTER", "NETNS", "ADDRESS", "WAN ADDRESS", "REACHABLE"),
        [
            (
                n["name"],
                n["cluster"],
                n["netns"],
                n["address"],
                n["wan_address"],
                "yes" if n["reachable"] else "NO",
            )
            for n in state["nodes"]
        ],
    )
    print(f"use it: export WHIMBREL_CONFIG={state['config']}")
