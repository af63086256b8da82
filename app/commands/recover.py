"""`whimbrel recover`: list and settle the migrations a whimbrel left unfinished (it died, or a
hand-over ended with its outcome unknown), each from the target's decision record."""

from __future__ import annotations

import argparse
import dataclasses
import json

from whimbrel.app.headless import with_pool
from whimbrel.backends.engine import Recovery, recover
from whimbrel.backends.ssh import SessionPool


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recover", help="settle unfinished migrations")
    parser.add_argument("--json", action="store_true", help="print what was found as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def work(pool: SessionPool) -> list[Recovery]:
        return await recover(pool)

    found = with_pool(args, work)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in found], indent=2))
    else:
        for r in found:
            print(r.text)
        if not found:
            print("no unfinished migration")
    return 0 if all(r.settled for r in found) else 1
