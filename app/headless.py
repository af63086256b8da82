"""What every headless command shares: the config it runs on, and running its async work."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from whimbrel.backends.config import Config, load_config, resolve_config_path
from whimbrel.backends.engine import recover
from whimbrel.backends.ssh import SessionPool

T = TypeVar("T")


def config_from(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config))


def with_pool(
    args: argparse.Namespace,
    work: Callable[[SessionPool], Awaitable[T]],
    *,
    settle: bool = False,
) -> T:
    """Run `work` with a session pool on the configured nodes, closing every connection after.
    With `settle`, first report (on stderr) and settle migrations an earlier whimbrel left
    unfinished when it died."""
    config = config_from(args)

    async def main() -> T:
        async with SessionPool(config) as pool:
            if settle:
                for found in await recover(pool):
                    print(f"whimbrel: {found.text}", file=sys.stderr)
            return await work(pool)

    return asyncio.run(main())
