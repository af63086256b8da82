"""`whimbrel ls`: every container on every node of every cluster."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.headless import with_pool
from whimbrel.app.output import print_table
from whimbrel.backends.inventory import DEFAULT_TIMEOUT_S, Inventory, fetch_inventory
from whimbrel.backends.units import format_duration, format_size, parse_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ls", help="list containers on every node of every cluster")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--timeout",
        default=f"{DEFAULT_TIMEOUT_S:g}s",
        help="per-node timeout (default %(default)s)",
    )
    parser.set_defaults(func=run)


def inventory_json(inventory: Inventory) -> dict:
    return {
        "taken_at": inventory.taken_at,
        "nodes": [
            {
                "name": n.node,
                "cluster": n.cluster,
                "reachable": n.reachable,
                "error": n.error,
                "elapsed_s": round(n.elapsed_s, 4),
            }
            for n in inventory.nodes
        ],
        "containers": [
            {
                "id": c.id,
                "name": c.name,
                "node": c.node,
                "cluster": c.cluster,
                "image": c.image,
                "state": c.state,
                "status": c.status,
                "memory_bytes": c.memory_bytes,
                "started_at": c.started_at.isoformat() if c.started_at else None,
                "uptime_s": c.uptime_s(),
                "pid": c.pid,
                "network_mode": c.network_mode,
                "ports": [str(p) for p in c.ports],
                "mounts": [
                    {
                        "type": m.type,
                        "name": m.name,
                        "source": m.source,
                        "destination": m.destination,
                        "rw": m.read_write,
                    }
                    for m in c.mounts
                ],
                "labels": dict(c.labels),
            }
            for c in inventory.containers
        ],
    }


def run(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout, "--timeout", allow_zero=False)
    inventory = with_pool(args, lambda pool: fetch_inventory(pool, timeout), settle=True)
    if args.json:
        print(json.dumps(inventory_json(inventory), indent=2))
    else:
        rows = [
            (
                c.name,
                c.node,
                c.cluster,
                c.state,
                c.image,
                format_size(c.memory_bytes) if c.memory_bytes is not None else "-",
                format_duration(up) if (up := c.uptime_s()) is not None else "-",
            )
            for c in inventory.containers
        ]
        print_table(("NAME", "NODE", "CLUSTER", "STATE", "IMAGE", "MEMORY", "UP"), rows)
        for n in inventory.nodes:
            if not n.reachable:
                print(f"! {n.node} ({n.cluster}): unreachable: {n.error}")
    # Partial answers are still answers; a script can tell from the JSON which node was down.
    return 0 if all(n.reachable for n in inventory.nodes) else 1
