"""`whimbrel dirty CONTAINER`: how fast a container dirties its memory, measured on its node."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.headless import with_pool
from whimbrel.backends.dirty import DirtyReport
from whimbrel.backends.inventory import fetch_inventory
from whimbrel.backends.probes import measure_dirty
from whimbrel.backends.ssh import SessionPool
from whimbrel.backends.units import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dirty", help="measure a container's dirty-page rate")
    parser.add_argument("container", metavar="CONTAINER", help="NODE/NAME, name or id prefix")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to sample (5)")
    parser.add_argument("--interval", type=float, default=1.0, help="one sample per (1 s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def work(pool: SessionPool) -> tuple[str, DirtyReport]:
        container = (await fetch_inventory(pool)).resolve(args.container)
        return container.ref, await measure_dirty(pool, container, args.seconds, args.interval)

    ref, report = with_pool(args, work)
    if args.json:
        print(
            json.dumps(
                {
                    "container": ref,
                    "method": report.method,
                    "bytes_per_s": report.bytes_per_s,
                    "pages_per_s": report.pages_per_s,
                    "memory_bytes": report.memory_bytes,
                    "cpu_s_per_sample": report.cpu_s_per_sample,
                    "samples": [
                        {
                            "t": s.t,
                            "interval_s": s.interval_s,
                            "dirty_pages": s.dirty_pages,
                            "dirty_bytes": s.dirty_bytes,
                            "pages": s.pages,
                            "cpu_s": s.cpu_s,
                        }
                        for s in report.samples
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{ref}: {format_size(report.bytes_per_s)}/s, {report.pages_per_s:.0f} pages/s "
        f"(method: {report.method}; {format_size(report.memory_bytes)} measured, "
        f"{report.cpu_s_per_sample * 1000:.0f} ms of node CPU per sample)"
    )
    return 0
