"""`whimbrel bench [--quick]`: real migrations on the lab over a grid, one per policy;
`whimbrel bench report`: a markdown report from what was recorded;
`whimbrel bench costs --costs FILE`: the costs fitted to what was recorded, written to FILE."""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

from whimbrel.backends.errors import UsageError
from whimbrel.backends.research.constants import write_costs
from whimbrel.backends.research.grid import ALL_POLICIES, full_grid, quick_grid
from whimbrel.backends.research.report import EarlierRuns, report
from whimbrel.backends.research.runner import run_grid
from whimbrel.backends.research.runs import Row, read_rows

# Relative to the working directory; `make bench-grid` names the repository's own files.
RESULTS, QUICK_RESULTS = Path("bench-results/grid.jsonl"), Path("bench-results/grid-quick.jsonl")
REPORT, QUICK_REPORT = Path("bench-results/benchmark.md"), Path("bench-results/benchmark-quick.md")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the policies with real migrations")
    parser.add_argument("action", nargs="?", default="run", choices=("run", "report", "costs"))
    parser.add_argument("--quick", action="store_true", help="a few minutes' subset")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point and policy (3)")
    parser.add_argument("--policies", default=",".join(ALL_POLICIES))
    parser.add_argument(
        "--points",
        metavar="PATTERN",
        help="only the grid's points whose key matches this shell pattern "
        "(keys as in the results: 'memwriter/1024MiB/medium@50ms/400Mbit', '*/256MiB/*')",
    )
    parser.add_argument(
        "--lazy-restore", action="store_true", help="every migration restores lazily"
    )
    parser.add_argument("--results", type=Path, default=None, help=f"JSON lines ({RESULTS})")
    parser.add_argument("--report", type=Path, default=None, help=f"markdown ({REPORT})")
    parser.add_argument(
        "--earlier",
        action="append",
        default=[],
        metavar="FILE=TITLE",
        help="report: runs of the same grid on another data path, compared point by point",
    )
    parser.add_argument(
        "--costs", type=Path, default=None, metavar="FILE", help="costs: the file to write"
    )
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="costs: runs of the hand-over as it runs now, fitted with --results': the "
        "hand-over's terms from these alone where they hold final rounds",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = args.results or (QUICK_RESULTS if args.quick else RESULTS)
    if args.action == "report":
        return _report(args, results)
    if args.action == "costs":
        return _costs(args, results)
    return _run_grid(args, results)


def _recorded(results: Path) -> list[Row]:
    rows = list(read_rows(results))
    if not rows:
        raise UsageError(f"no runs recorded in {results}: run `whimbrel bench` first")
    return rows


def _report(args: argparse.Namespace, results: Path) -> int:
    rows = _recorded(results)
    earlier = []
    for spec in args.earlier:
        data, _, title = spec.partition("=")
        if not title:
            raise UsageError(f"--earlier {spec}: expected FILE=TITLE")
        earlier.append(EarlierRuns(title, data, list(read_rows(Path(data)))))
    target = args.report or (QUICK_REPORT if args.quick else REPORT)
    target.parent.mkdir(parents=True, exist_ok=True)
    command = f"whimbrel bench report{' --quick' if args.quick else ''}"
    grid = len(quick_grid() if args.quick else full_grid())
    target.write_text(report(rows, command, str(results), grid, earlier))
    print(f"report: {target} ({len(rows)} runs)")
    return 0


def _costs(args: argparse.Namespace, results: Path) -> int:
    if args.costs is None:
        raise UsageError("bench costs: --costs FILE names the costs file to write")
    now = [row for path in args.also for row in _recorded(path)]
    source = " ".join(str(path) for path in (results, *args.also))
    kept = write_costs(_recorded(results), args.costs, f"whimbrel bench costs: {source}", now)
    print(f"calibrated costs: {args.costs}" + (f"; held: {', '.join(kept)}" if kept else ""))
    return 0


def _run_grid(args: argparse.Namespace, results: Path) -> int:
    policies = tuple(p for p in args.policies.split(",") if p)
    unknown = [p for p in policies if p not in ALL_POLICIES]
    if unknown:
        raise UsageError(f"--policies: unknown {', '.join(unknown)}")
    points = quick_grid() if args.quick else full_grid()
    if args.points:
        points = [p for p in points if fnmatch.fnmatchcase(p.key, args.points)]
        if not points:
            raise UsageError(f"--points {args.points}: no point of the grid matches")
    repeats = 1 if args.quick else max(1, args.repeats)
    made = run_grid(
        points, policies, repeats, results, lambda line: print(line, flush=True), args.lazy_restore
    )
    rows = list(read_rows(results))
    summary = {
        "results": str(results),
        "runs_made": made,
        "runs_recorded": len(rows),
        "failed": sum(not r["ok"] for r in rows),
    }
    print(json.dumps(summary))
    return 0 if all(r["ok"] for r in rows) else 1
