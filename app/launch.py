"""Opening the console from the command line: its config (or none yet: the console says how to
start), its validated settings, and a terminal to draw on. Imported by the CLI only when the
console opens, so headless commands never load Textual."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from whimbrel.app.backend import SSHBackend
from whimbrel.app.console import EXIT_OK, WhimbrelApp, binding_ids
from whimbrel.app.settings import console_settings
from whimbrel.backends.config import Config, ConfigError, load_config, resolve_config_path
from whimbrel.backends.errors import UsageError
from whimbrel.themes import THEMES


def run_from_args(args: argparse.Namespace) -> int:
    """`whimbrel` with no subcommand."""
    return run_console(resolve_config_path(args.config), read_only=args.read_only)


def run_console(config_path: Path, read_only: bool) -> int:
    """Open the console on the config at `config_path` (a missing file shows how to start)."""
    config: Config | None
    try:
        config = load_config(config_path)
    except ConfigError:
        if config_path.exists():
            raise
        config = None  # no config yet: the console says how to start
    settings = console_settings(config, THEMES, binding_ids())
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the console needs a terminal; scripts can use `whimbrel ls --json`")
    timings = os.environ.get("WHIMBREL_TIMINGS")
    app = WhimbrelApp(
        SSHBackend(config) if config else None,
        config_path=config_path,
        settings=settings,
        read_only=read_only,
        watch_terminal=True,
        timings=Path(timings) if timings else None,
    )
    return app.run() or EXIT_OK
