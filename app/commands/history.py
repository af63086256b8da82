"""`whimbrel history`: past migrations, predicted against measured."""

from __future__ import annotations

import argparse
import json
import time

from whimbrel.app.output import print_table
from whimbrel.backends.history import history_dir, read_records
from whimbrel.backends.units import format_duration, format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("history", help="past migrations, predicted against measured")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--limit", type=int, default=20, help="how many, newest first (20)")
    parser.set_defaults(func=run)


def _dur(value: float | None) -> str:
    return format_duration(value) if value is not None else "-"


def run(args: argparse.Namespace) -> int:
    records = read_records()[: max(0, args.limit)]
    if args.json:
        print(
            json.dumps(
                [{k: v for k, v in r.items() if k != "events"} for r in records],
                indent=2,
                default=str,
            )
        )
        return 0
    if not records:
        print(f"no migrations recorded in {history_dir()}")
        return 0
    print_table(
        (
            "WHEN",
            "CONTAINER",
            "FROM",
            "TO",
            "MODE",
            "STATUS",
            "RUNS ON",
            "DOWNTIME",
            "PREDICTED",
            "ROUNDS",
            "SENT",
        ),
        [
            (
                time.strftime("%m-%d %H:%M", time.localtime(r.get("started_at", 0))),
                r.get("container", "?"),
                r.get("src", "?"),
                r.get("dst", "?"),
                r.get("mode", "?"),
                r.get("status", "?"),
                r.get("running_on", "?"),
                _dur(r.get("downtime_s")),
                _dur(r.get("predicted_downtime_s")),
                r.get("rounds", "-"),
                format_size(r["bytes_sent"]) if r.get("bytes_sent") else "-",
            )
            for r in records
        ],
    )
    return 0
