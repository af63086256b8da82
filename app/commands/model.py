"""`whimbrel model`: the latency-aware pre-copy plan for given numbers, headless."""

from __future__ import annotations

import argparse
import json
import math

from whimbrel.app.output import print_table
from whimbrel.backends.errors import UsageError
from whimbrel.backends.model import POLICIES, ModelInputs, Plan, compare, plan
from whimbrel.backends.units import (
    format_bandwidth,
    format_duration,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_rate,
    parse_size,
)

BAR_WIDTH = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model",
        help="predict rounds, downtime and total time of a live migration",
        description="Plan a pre-copy migration with the latency-aware model: whether iterating "
        "pays off, how many rounds, the downtime, total time and bytes.",
    )
    need = parser.add_argument_group("required")
    need.add_argument("--size", required=True, help="state to move, e.g. 512MiB")
    need.add_argument("--dirty-rate", required=True, help="dirty-page rate, e.g. 8MiB/s")
    need.add_argument("--bandwidth", required=True, help="throughput of the path, e.g. 200Mbit")
    need.add_argument("--rtt", required=True, help="round-trip time, e.g. 50ms")
    parser.add_argument("--round-trips", default="1", help="round trips per round, k (default 1)")
    parser.add_argument("--dump-time", default="0s", help="fixed CRIU dump time (default 0s)")
    parser.add_argument(
        "--final-dump-time", help="the final dump's fixed time, paused (default: --dump-time)"
    )
    parser.add_argument("--restore-time", default="0s", help="restore time (default 0s)")
    parser.add_argument("--downtime-target", default="300ms", help="default 300ms")
    parser.add_argument("--max-rounds", default="30", help="round cap (default 30)")
    parser.add_argument("--policy", default="latency-aware", choices=POLICIES)
    parser.add_argument("--working-set", help="hot working set W: saturating dirty set, e.g. 64MiB")
    parser.add_argument("--dump-rate", help="CRIU dump rate: every round freezes, e.g. 1GiB/s")
    parser.add_argument(
        "--incremental-dumps",
        action="store_true",
        help="with --dump-rate: dumps write only dirty pages (pre-dump), not the whole state",
    )
    parser.add_argument(
        "--floor-tolerance",
        default="5%",
        help="target out of reach: stop this close to the latency floor (default 5%%)",
    )
    parser.add_argument(
        "--round-overhead", default="0s", help="fixed work per pre-copy round, c (default 0s)"
    )
    parser.add_argument(
        "--first-round-extra",
        default="0s",
        help="what round 0 takes beyond a later round: session setup, TCP windows (default 0s)",
    )
    parser.add_argument(
        "--final-round-trips", default="0.5", help="round trips inside the downtime (default 0.5)"
    )
    parser.add_argument(
        "--brownout-weight",
        default="0",
        help="a pre-copy freeze second against a downtime second (default 0: least downtime)",
    )
    parser.add_argument(
        "--distinct-share",
        default="100%",
        help="of the state, the pages unlike each other: what a whole-state round sends "
        "(default 100%%)",
    )
    parser.add_argument("--compare", action="store_true", help="all policies side by side")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _number(text: str, what: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"{what}: cannot read {text!r}, expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what}: {text!r} must be a finite number, zero or more")
    return value


def inputs_from_args(args: argparse.Namespace) -> ModelInputs:
    rounds = _number(args.max_rounds, "max rounds")
    if rounds != int(rounds):
        raise UsageError(f"max rounds: {args.max_rounds!r} must be a whole number")
    return ModelInputs(
        size=parse_size(args.size, "size"),
        dirty_rate=parse_rate(args.dirty_rate, "dirty rate"),
        bandwidth=parse_bandwidth(args.bandwidth, "bandwidth"),
        rtt=parse_duration(args.rtt, "rtt"),
        round_trips=_number(args.round_trips, "round trips"),
        dump_time=parse_duration(args.dump_time, "dump time"),
        restore_time=parse_duration(args.restore_time, "restore time"),
        downtime_target=parse_duration(args.downtime_target, "downtime target"),
        max_rounds=int(rounds),
        working_set=None
        if args.working_set is None
        else parse_size(args.working_set, "working set", allow_zero=False),
        dump_rate=None
        if args.dump_rate is None
        else parse_rate(args.dump_rate, "dump rate", allow_zero=False),
        incremental_dumps=args.incremental_dumps,
        floor_tolerance=_number(args.floor_tolerance, "floor tolerance"),
        round_overhead=parse_duration(args.round_overhead, "round overhead"),
        first_round_extra=parse_duration(args.first_round_extra, "first round extra"),
        final_round_trips=_number(args.final_round_trips, "final round trips"),
        brownout_weight=_number(args.brownout_weight, "brownout weight"),
        distinct_share=_number(args.distinct_share, "distinct share"),
        final_dump_time=None
        if args.final_dump_time is None
        else parse_duration(args.final_dump_time, "final dump time"),
    )


def run(args: argparse.Namespace) -> int:
    inputs = inputs_from_args(args)
    if args.compare:
        plans = compare(inputs)
        if args.json:
            print(json.dumps({name: p.to_json() for name, p in plans.items()}, indent=2))
        else:
            _print_comparison(inputs, list(plans.values()))
        return 0
    chosen = plan(inputs, args.policy)
    if args.json:
        print(json.dumps(chosen.to_json(), indent=2))
    else:
        _print_plan(chosen)
    return 0


def _describe(i: ModelInputs) -> str:
    return (
        f"{format_size(i.size)} dirtied at {format_size(i.dirty_rate)}/s over "
        f"{format_bandwidth(i.bandwidth)} at {format_duration(i.rtt)} RTT "
        f"(k = {i.round_trips:g}), downtime target {format_duration(i.downtime_target)}"
    )


def _floor(p: Plan) -> str:
    if not math.isfinite(p.floor_bytes):
        return "none: the rounds do not converge"
    return f"V* = {format_size(p.floor_bytes)}, downtime ≥ {format_duration(p.floor_downtime_s)}"


def _bar(value: float, most: float) -> str:
    if most <= 0 or value <= 0:
        return ""
    return "█" * max(1, round(BAR_WIDTH * value / most))


def _print_plan(p: Plan) -> None:
    target = format_duration(p.inputs.downtime_target)
    met = "met" if p.meets_target else "missed"
    print(_describe(p.inputs))
    facts = [
        ("policy", p.policy),
        ("verdict", p.verdict),
        ("reason", p.reason),
        ("rounds", f"{p.rounds} pre-copy + 1 final"),
        ("downtime", f"{format_duration(p.downtime_s)} (target {target}: {met})"),
        ("total", format_duration(p.total_time_s)),
        ("sent", format_size(p.bytes_sent)),
        ("floor", _floor(p)),
    ]
    for key, value in facts:
        print(f"{key:<9} {value}")
    print()
    most = max(r.bytes for r in p.per_round)
    rows = [
        (
            f"{r.index} final" if r.final else r.index,
            format_size(r.bytes),
            format_duration(r.seconds),
            format_duration(r.freeze_s) if r.freeze_s else "-",
            _bar(r.bytes, most),
        )
        for r in p.per_round
    ]
    print_table(("ROUND", "BYTES", "SECONDS", "FROZEN", ""), rows)


def _print_comparison(inputs: ModelInputs, plans: list[Plan]) -> None:
    print(_describe(inputs))
    print_table(
        ("POLICY", "VERDICT", "ROUNDS", "DOWNTIME", "CLAIMED", "TOTAL", "SENT", "TARGET"),
        [
            (
                p.policy,
                p.verdict,
                p.rounds,
                format_duration(p.downtime_s),
                format_duration(p.claimed_downtime_s),
                format_duration(p.total_time_s),
                format_size(p.bytes_sent),
                "met" if p.meets_target else "missed",
            )
            for p in plans
        ],
    )
    print()
    for p in plans:
        print(f"{p.policy}: {p.reason}")
