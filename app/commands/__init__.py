"""Headless subcommands. Each module exposes `register(subparsers)` and sets `func` on its
parser to a callable `(args) -> int` (the exit code). None of them imports Textual."""
