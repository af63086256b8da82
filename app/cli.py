"""The `whimbrel` command line: the console with no subcommand, headless subcommands otherwise.

Headless subcommands never import Textual, so scripts stay fast and a broken terminal cannot
break them (tests/test_import_hygiene.py holds this).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from whimbrel.backends.errors import UsageError, WhimbrelError

# Subcommand modules under whimbrel.app.commands, in the order `--help` lists them.
COMMANDS = (
    "ls",
    "doctor",
    "migrate",
    "evacuate",
    "recover",
    "history",
    "probe",
    "dirty",
    "model",
    "bench",
    "config",
    "lab",
    "demo",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whimbrel",
        description="Live-migrate stateful Docker containers between clusters with CRIU over SSH.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $WHIMBREL_CONFIG, else $XDG_CONFIG_HOME/whimbrel/config.toml)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="read-only: no migration can start (the console and `migrate` alike)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"whimbrel.app.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No subcommand: the console. Imported here, so headless commands never load Textual.
        from whimbrel.app.launch import run_from_args

        args.func = run_from_args
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"whimbrel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WhimbrelError as exc:
        print(f"whimbrel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
