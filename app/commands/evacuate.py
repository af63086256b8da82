"""`whimbrel evacuate NODE|CLUSTER`: move every running container off a node (or a cluster) to
nodes of other clusters, several at once within the link. The plan comes first: where each
goes, in what order, how many at once, each one's downtime and the whole evacuation's time
predicted with the link shared. Exit code 0 only when every running container moved."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from whimbrel.app.commands.migrate import (
    ProgressPacing,
    abort_on_signals,
    add_request_options,
    describe,
    print_line,
    request_from,
)
from whimbrel.app.headless import with_pool
from whimbrel.app.output import print_table
from whimbrel.app.preconditions import read_only_refusal
from whimbrel.backends import costs
from whimbrel.backends.errors import UsageError
from whimbrel.backends.evacuation import (
    MAX_AUTO_CONCURRENCY,
    MAX_CONCURRENCY,
    Evacuation,
    EvacuationFinished,
    EvacuationPlan,
    MoveEvent,
    MoveStarted,
    Survey,
    measure_routes,
    place,
    plan_evacuation,
    survey,
)
from whimbrel.backends.events import event_json
from whimbrel.backends.ssh import SessionPool
from whimbrel.backends.units import format_duration, format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evacuate", help="move every container off a node or cluster, several at once"
    )
    parser.add_argument("source", metavar="NODE|CLUSTER", help="what to empty")
    parser.add_argument(
        "--to", metavar="NODE|CLUSTER", help="where to (default: every node of the other clusters)"
    )
    parser.add_argument(
        "--concurrency",
        default="auto",
        metavar="N|auto",
        help=f"migrations at once, 1-{MAX_CONCURRENCY}; auto: the fastest within the link that "
        f"does not stretch any downtime (at most {MAX_AUTO_CONCURRENCY})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="measure and show the plan, move nothing"
    )
    parser.add_argument(
        "--stop-on-failure",
        action="store_true",
        help="start no further migration once one fails (running ones finish)",
    )
    add_request_options(parser)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="JSON lines: plan, progress, summary")
    parser.set_defaults(func=run)


def _concurrency(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--concurrency: {text!r} is not a number or 'auto'") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    return value


def run(args: argparse.Namespace) -> int:
    concurrency = _concurrency(args.concurrency)
    template = request_from(args, "-", "-")  # checks the options before anything is measured
    if not args.dry_run:
        if reason := read_only_refusal(args.read_only, headless=True):
            raise UsageError(reason)
        if not args.yes and not sys.stdin.isatty():
            raise UsageError("evacuate: not a terminal to confirm on; pass --yes (or --dry-run)")

    def note(text: str) -> None:  # measuring's progress: stderr, never in the JSON lines
        with contextlib.suppress(OSError):
            print(f"whimbrel: {text}", file=sys.stderr, flush=True)

    async def work(pool: SessionPool) -> bool:
        found = await survey(pool, args.source, args.to, note)
        placement = place(found.leaving, found.destinations)
        routes = await measure_routes(
            pool, placement.routes(found.leaving), template.probe_bytes, note
        )
        plan = plan_evacuation(
            found.leaving, placement, routes, template, costs.DEFAULT_COSTS, concurrency
        )
        stays = (*found.stays, *plan.stays)
        if args.json:
            print_line(json.dumps({"event": "EvacuationPlanned", **_plan_json(found, plan)}))
        else:
            _print_plan(args.source, found, plan)
        if args.dry_run or not plan.moves:
            return not stays
        if not args.yes and not _confirmed(len(plan.moves), args.source):
            print("cancelled")
            return False
        finished = await _follow(
            Evacuation(pool, plan, template, stop_on_failure=args.stop_on_failure), args.json
        )
        return finished.ok and not stays

    return 0 if with_pool(args, work, settle=True) else 1


def _confirmed(count: int, source: str) -> bool:
    answer = input(f"move {count} container{'s' if count != 1 else ''} off {source}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def _follow(evacuation: Evacuation, as_json: bool) -> EvacuationFinished:
    """Run it, printing each event; Ctrl-C, TERM or HUP stop it cleanly (see run.py)."""
    abort_on_signals(
        evacuation.abort,
        "no further migration starts; running ones roll back at their next round boundary "
        "(or finish, once in the final round)",
    )
    pacing: dict[str, ProgressPacing] = {}
    printing = True
    finished: EvacuationFinished | None = None
    async for item in evacuation.events():
        if isinstance(item, EvacuationFinished):
            finished = item
            break
        if not printing:
            continue
        if as_json:
            printing = print_line(json.dumps(_event_json(item), default=str))
        elif isinstance(item, MoveStarted):
            printing = print_line(f"[{item.t:7.2f}s] {item.ref}: starting, to {item.target}")
        elif pacing.setdefault(item.ref, ProgressPacing()).says(item.event):
            printing = print_line(
                "\n".join(f"{item.ref}: {line}" for line in describe(item.event).splitlines())
            )
    assert finished is not None
    if printing and as_json:
        print_line(json.dumps({"event": "EvacuationFinished", **finished.to_json()}))
    elif printing:
        _print_summary(finished)
    return finished


def _event_json(item: MoveStarted | MoveEvent) -> dict[str, Any]:
    if isinstance(item, MoveStarted):
        return {"event": "MoveStarted", "move": item.ref, "to": item.target, "t_evacuation": item.t}
    return {"move": item.ref, **event_json(item.event)}


def _plan_json(found: Survey, plan: EvacuationPlan) -> dict[str, Any]:
    doc = plan.to_json()
    doc["stays"] = [{"container": s.ref, "reason": s.reason} for s in (*found.stays, *plan.stays)]
    return {"sources": list(found.sources), **doc, "not_running": list(found.idle)}


def _print_plan(source: str, found: Survey, plan: EvacuationPlan) -> None:
    targets = sorted({m.target for m in plan.moves})
    print(
        f"evacuate {source}: {len(plan.moves)} running container"
        f"{'s' if len(plan.moves) != 1 else ''} to {', '.join(targets) or '-'}, "
        f"{plan.concurrency} at once"
    )
    if plan.moves:
        print_table(
            ("CONTAINER", "TO", "MODE", "ROUNDS", "DOWNTIME", "TIME", "STARTS", "SENDS"),
            [
                (
                    m.ref,
                    m.target,
                    m.mode,
                    m.plan.rounds,
                    format_duration(m.plan.downtime_s),
                    format_duration(m.duration_s),
                    f"+{m.start_s:.1f} s",
                    format_size(m.plan.bytes_sent),
                )
                for m in plan.moves
            ],
        )
        print(
            f"predicted: {format_duration(plan.total_time_s)} in all, the link shared "
            f"(one after another: {format_duration(plan.one_by_one_s)})"
        )
    for stay in (*found.stays, *plan.stays):
        print(f"stays: {stay.ref}: {stay.reason}")
    if found.idle:
        print(f"not running, not moved: {', '.join(found.idle)}")


def _print_summary(finished: EvacuationFinished) -> None:
    rows = []
    for r in finished.results:
        downtime = format_duration(r.downtime_s) if r.downtime_s is not None else "-"
        predicted = (
            format_duration(r.predicted_downtime_s) if r.predicted_downtime_s is not None else "-"
        )
        took = format_duration(r.duration_s) if r.duration_s is not None else "-"
        planned = format_duration(r.planned_duration_s) if r.planned_duration_s else "-"
        rows.append(
            (
                r.ref,
                "moved" if r.ok else "FAILED",
                r.running_on,
                f"{downtime} ({predicted})",
                f"{took} ({planned})",
                r.error or "",
            )
        )
    print()
    print_table(("CONTAINER", "RESULT", "RUNS ON", "DOWNTIME (PLAN)", "TIME (PLAN)", "ERROR"), rows)
    moved = sum(1 for r in finished.results if r.ok)
    print(
        f"{moved} of {len(finished.results)} moved in {format_duration(finished.wall_s)} "
        f"(planned {format_duration(finished.planned_s)}; the migrations' own times add up "
        f"to {format_duration(finished.migrations_s)})"
    )
