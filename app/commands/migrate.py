"""`whimbrel migrate CONTAINER --to NODE`: live-migrate a container to a node of another
cluster. Exit code 0 only when the container runs on the target."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable

from whimbrel.app.headless import with_pool
from whimbrel.app.preconditions import read_only_refusal
from whimbrel.backends.engine import MODES, Migration, MigrationRequest
from whimbrel.backends.errors import UsageError
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    PhaseChanged,
    RoundFinished,
    RoundProgress,
    RoundStarted,
    event_json,
)
from whimbrel.backends.model import POLICIES
from whimbrel.backends.ssh import SessionPool
from whimbrel.backends.units import (
    format_bandwidth,
    format_duration,
    format_size,
    parse_duration,
)

# The text output says how far a round got at most this often (--json: every event, twice a
# second): enough to see a long round move, few enough not to bury the rounds' own lines.
PROGRESS_TEXT_EVERY_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="live-migrate a container to another node")
    parser.add_argument("container", metavar="CONTAINER", help="NODE/NAME, name or id prefix")
    parser.add_argument("--to", required=True, metavar="NODE", help="the target node")
    add_request_options(parser)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="JSON lines of progress")
    parser.set_defaults(func=run)


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """How each migration runs: `migrate`'s and `evacuate`'s options alike."""
    parser.add_argument("--mode", default="auto", choices=MODES)
    parser.add_argument("--downtime-target", default="300ms", help="for the model (300ms)")
    parser.add_argument("--max-rounds", type=int, default=8, help="pre-copy round cap (8)")
    parser.add_argument(
        "--policy", default="latency-aware", choices=POLICIES, help="how rounds are chosen"
    )
    parser.add_argument(
        "--rounds", type=int, help="exactly N pre-copy rounds, overriding the model (for tests)"
    )
    parser.add_argument(
        "--brownout-weight",
        type=float,
        default=0.0,
        help="a second of pre-copy freeze against a second of downtime (0: least downtime)",
    )
    parser.add_argument(
        "--keep-source", action="store_true", help="keep the source container, stopped"
    )
    parser.add_argument(
        "--lazy-restore",
        action="store_true",
        help="restore lazily: the copy runs while CRIU fills its memory from the target's own "
        "page files (post-copy: see README)",
    )


def request_from(args: argparse.Namespace, container: str, target: str) -> MigrationRequest:
    return MigrationRequest(
        container=container,
        target=target,
        mode=args.mode,
        downtime_target_s=parse_duration(args.downtime_target, "--downtime-target"),
        keep_source=args.keep_source,
        max_rounds=args.max_rounds,
        rounds=args.rounds,
        policy=args.policy,
        brownout_weight=args.brownout_weight,
        lazy_restore=args.lazy_restore,
    )


def describe(event: MigrationEvent) -> str:
    if isinstance(event, PhaseChanged):
        return f"[{event.t:7.2f}s] == {event.phase.value}" + (
            f": {event.message}" if event.message else ""
        )
    if isinstance(event, RoundStarted):
        kind = "final round" if event.final else f"round {event.index}"
        return (
            f"[{event.t:7.2f}s]    {kind}: planned {format_size(event.planned_bytes)}, "
            f"~{format_duration(event.predicted_seconds)}"
        )
    if isinstance(event, RoundProgress):
        text = (
            f"[{event.t:7.2f}s]    round {event.index}: {format_size(event.sent_bytes)} of "
            f"{format_size(event.planned_bytes)} sent"
        )
        if event.rate_bytes_per_s is not None:
            text += f", {format_bandwidth(event.rate_bytes_per_s)}"
        if event.eta_s is not None:
            text += f", ~{format_duration(event.eta_s)} left"
        return text
    if isinstance(event, RoundFinished):
        kind = "final round" if event.final else f"round {event.index}"
        return (
            f"[{event.t:7.2f}s]    {kind}: sent {format_size(event.sent_bytes)} of "
            f"{format_size(event.state_bytes)} in {format_duration(event.seconds)}, "
            f"frozen {format_duration(event.freeze_s)}, "
            f"dirty {format_size(event.dirty_rate)}/s, "
            f"{event.throughput * 8 / 1e6:.0f} Mbit/s ({event.link_utilisation:.0%} of the link); "
            f"model: {event.predicted_remaining_rounds} more, "
            f"downtime {format_duration(event.predicted_downtime_s)}"
        )
    if isinstance(event, LogLine):
        return f"[{event.t:7.2f}s]    {event.text}"
    assert isinstance(event, MigrationFinished)
    if not event.ok:
        if event.running_on == "unknown" and event.src == "?":  # no such container
            return f"FAILED: {event.error}\nnothing was changed"
        if event.running_on == "unknown":  # the hand-over's end is not known yet
            return f"FAILED: {event.error}\n`whimbrel recover` settles where the container runs"
        return f"FAILED: {event.error}\nthe container runs on {event.running_on}"
    predicted = format_duration(event.predicted_downtime_s) if event.predicted_downtime_s else "-"
    return (
        f"done: {event.container} runs on {event.running_on}; downtime "
        f"{format_duration(event.downtime_s or 0)} (predicted {predicted}), "
        f"{event.rounds} pre-copy rounds, brownouts "
        f"{', '.join(format_duration(b) for b in event.brownouts_s) or 'none'}, "
        f"{format_size(event.bytes_sent)} sent, total {format_duration(event.total_time_s)}"
        f"\nrecord: {event.record}"
    )


def run(args: argparse.Namespace) -> int:
    request = request_from(args, args.container, args.to)
    if reason := read_only_refusal(args.read_only, headless=True):
        raise UsageError(reason)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("migrate: not a terminal to confirm on; pass --yes")
        answer = input(f"migrate {args.container} to {args.to}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("cancelled")
            return 1

    async def work(pool: SessionPool) -> bool:
        migration = Migration(pool, request)
        # Ctrl-C, a kill (TERM) or a closed terminal (HUP) ask for a clean rollback at the
        # next round boundary (the source keeps running); once the final round has begun the
        # source node finishes it regardless, and whimbrel follows it to its end.
        abort_on_signals(
            migration.abort,
            "rolling back at the next round boundary "
            "(too late once the final round began: it is then followed to its end)",
        )
        ok = False
        printing = True
        pacing = ProgressPacing()
        async for event in migration.events():
            if printing and args.json:
                printing = print_line(json.dumps(event_json(event), default=str))
            elif printing and pacing.says(event):
                printing = print_line(describe(event))
            if isinstance(event, MigrationFinished):
                ok = event.ok
        return ok

    return 0 if with_pool(args, work, settle=True) else 1


ABORT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ProgressPacing:
    """Which events the text output prints: all but a round's progress, which it prints once
    PROGRESS_TEXT_EVERY_S have passed since the round's last line (its start, or the progress
    printed before): a round shorter than that prints none."""

    def __init__(self, every_s: float = PROGRESS_TEXT_EVERY_S) -> None:
        self.every_s = every_s
        self._last_t = 0.0

    def says(self, event: MigrationEvent) -> bool:
        if isinstance(event, RoundStarted):
            self._last_t = event.t
        if not isinstance(event, RoundProgress):
            return True
        if event.t - self._last_t < self.every_s:
            return False
        self._last_t = event.t
        return True


def print_line(line: str) -> bool:
    """Print a line; False once the terminal is gone (a hang-up), and the migration goes on
    to its end unprinted: its record tells the outcome."""
    try:
        print(line, flush=True)
        return True
    except OSError:
        return False


def abort_on_signals(abort: Callable[[], None], says: str) -> None:
    """Ctrl-C, a kill (TERM) or a closed terminal (HUP) call `abort`, saying so on stderr."""
    loop = asyncio.get_running_loop()
    for signum in ABORT_SIGNALS:
        loop.add_signal_handler(signum, _abort, abort, says, signum)


def _abort(abort: Callable[[], None], says: str, signum: int) -> None:
    with contextlib.suppress(OSError):
        print(f"whimbrel: {signal.Signals(signum).name}: {says}", file=sys.stderr)
    abort()
