"""`whimbrel bench [--quick]`: real migrations on the lab over a grid, one per policy;
`whimbrel bench report`: docs/benchmark.md from what was recorded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from whimbrel.backends import bench
from whimbrel.backends.bench_report import EARLIER_PATHS, records, report, spread_record
from whimbrel.backends.calibration import calibrate
from whimbrel.backends.costs import COSTS_FILE, load_costs, save_costs
from whimbrel.backends.errors import UsageError

# The full grid's data and report are committed; the quick smoke run's are not.
RESULTS, QUICK_RESULTS = Path("docs/benchmark-runs.jsonl"), Path("bench-results/grid-quick.jsonl")
REPORT, QUICK_REPORT = Path("docs/benchmark.md"), Path("bench-results/benchmark-quick.md")


def _spread_on_record() -> dict[str, Any]:
    try:
        return json.loads(COSTS_FILE.read_text()).get("spread", {})
    except (OSError, ValueError):
        return {}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the policies with real migrations")
    parser.add_argument("action", nargs="?", default="run", choices=("run", "report"))
    parser.add_argument("--quick", action="store_true", help="a few minutes' subset")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point and policy (3)")
    parser.add_argument("--policies", default=",".join(bench.ALL_POLICIES))
    parser.add_argument("--results", type=Path, default=None, help=f"JSON lines ({RESULTS})")
    parser.add_argument("--report", type=Path, default=None, help=f"markdown ({REPORT})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = args.results or (QUICK_RESULTS if args.quick else RESULTS)
    if args.action == "report":
        target = args.report or (QUICK_REPORT if args.quick else REPORT)
        rows = list(bench.read_rows(results))
        if not rows:
            raise UsageError(f"no runs recorded in {results}: run `whimbrel bench` first")
        target.parent.mkdir(parents=True, exist_ok=True)
        command = f"whimbrel bench report{' --quick' if args.quick else ''}"
        grid = len(bench.quick_grid() if args.quick else bench.full_grid())
        earlier = [
            (path, list(bench.read_rows(Path(path.data))))
            for path in EARLIER_PATHS
            if not args.quick and Path(path.data).exists()
        ]
        target.write_text(report(rows, command, str(results), grid, earlier))
        print(f"report: {target} ({len(rows)} runs)")
        if not args.quick:
            # What these runs cannot determine (a rate, from one state size) stays as it was.
            held, held_spread = load_costs(), _spread_on_record()
            calibration = calibrate(records(r for r in rows if r["ok"]), held=held)
            spread = spread_record(calibration)
            kept = sorted(set(held_spread) - set(spread))
            note = f"; held: {', '.join(kept)}" if kept else ""
            save_costs(calibration.costs(held), held_spread | spread, f"{command}: {results}{note}")
            print(f"calibrated costs: {COSTS_FILE}{note}")
        return 0
    policies = tuple(p for p in args.policies.split(",") if p)
    unknown = [p for p in policies if p not in bench.ALL_POLICIES]
    if unknown:
        raise UsageError(f"--policies: unknown {', '.join(unknown)}")
    points = bench.quick_grid() if args.quick else bench.full_grid()
    repeats = 1 if args.quick else max(1, args.repeats)
    made = bench.run_grid(points, policies, repeats, results, lambda line: print(line, flush=True))
    rows = list(bench.read_rows(results))
    print(json.dumps({"results": str(results), "runs_made": made, "runs_recorded": len(rows),
                      "failed": sum(not r["ok"] for r in rows)}))  # fmt: skip
    return 0 if all(r["ok"] for r in rows) else 1
