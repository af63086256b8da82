"""`whimbrel doctor [NODE...]`: is each node ready for migrations? Every check, pass or fail,
and for a failure the remedy in one line. Exit code 0 only when every required check passes."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.headless import with_pool
from whimbrel.backends.doctor import NodeReport, examine_all
from whimbrel.backends.ssh import SessionPool


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check that nodes are ready for migrations, with remedies"
    )
    parser.add_argument("nodes", nargs="*", metavar="NODE", help="the nodes (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def work(pool: SessionPool) -> list[NodeReport]:
        names = args.nodes or [n.name for n in pool.config.nodes]
        return await examine_all(pool, [pool.config.node(name) for name in names])

    reports = with_pool(args, work)
    if args.json:
        print(json.dumps({"nodes": [r.as_json() for r in reports]}, indent=2))
    else:
        for report in reports:
            print_report(report)
    return 0 if all(r.ready for r in reports) else 1


def print_report(report: NodeReport) -> None:
    print(f"{report.node} ({report.cluster}): {report.verdict}")
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        print(f"  {check.mark:<4}  {check.name:<{width}}  {check.detail}")
        if check.remedy:
            print(f"  {'':<4}  {'':<{width}}  -> {check.remedy}")
