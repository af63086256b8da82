"""The headless CLI never imports Textual (Harlequin keeps the same promise): scripts stay
fast, and a broken terminal or UI dependency cannot break `whimbrel ls --json`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from whimbrel.app.cli import COMMANDS

CHECK = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    "sys.exit(3 if 'textual' in sys.modules else 0)"
)


def _imports_textual(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", CHECK, module], capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise AssertionError(f"importing {module} failed: {done.stderr.strip()}")
    return done.returncode == 3


def test_the_cli_module_does_not_import_textual() -> None:
    assert not _imports_textual("whimbrel.app.cli")


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_module_does_not_import_textual(name: str) -> None:
    assert not _imports_textual(f"whimbrel.app.commands.{name}")


def test_the_migration_preconditions_do_not_import_textual() -> None:
    # `whimbrel migrate` asks them, and the engine is to own them.
    assert not _imports_textual("whimbrel.app.preconditions")


def test_building_the_parser_and_asking_for_help_does_not_import_textual() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from whimbrel.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "sys.exit(3 if 'textual' in sys.modules else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_console_module_is_where_textual_comes_in() -> None:
    assert _imports_textual("whimbrel.app.console")
