"""Pre-copy: rounds while the container runs, each a `--leave-running` dump and only the pages
the target does not hold yet, the model re-planning after each from what it measured, until a
stop rule (stop_rules.py) says the final round may go."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

from whimbrel.backends import model
from whimbrel.backends.events import MigrationEvent, RoundFinished, RoundStarted
from whimbrel.backends.migration_context import MigrationContext
from whimbrel.backends.migration_record import RoundRecord
from whimbrel.backends.migration_request import MigrationFailed
from whimbrel.backends.node_actions import link_json
from whimbrel.backends.preflight import Prepared
from whimbrel.backends.round_progress import RoundMeter
from whimbrel.backends.ssh import PROGRESS, Conversation
from whimbrel.backends.stop_rules import after_round, round_cap

# A round is given up when its agent says nothing for this long. It speaks twice a second while
# it sends, but not before: while runc dumps (runcdump.py gives it 600 s) and round 0's sessions
# open. A round has no cap of its own: a large state on a slow link may take hours, and says so
# all along.
ROUND_SILENCE_S = 660.0


@dataclass(frozen=True)
class Rounds:
    """What the pre-copy rounds left for the hand-over."""

    count: int  # pre-copy rounds run
    plan: model.Plan  # re-planned after the last round: the final round's forecast
    inputs: model.ModelInputs  # as the last round measured them
    done: tuple[model.MeasuredRound, ...]
    brownouts_s: tuple[float, ...]  # each round's freeze
    sent_bytes: int


def open_agent(
    ctx: MigrationContext, prepared: Prepared
) -> AbstractAsyncContextManager[Conversation]:
    """One agent on the source runs the rounds over sessions it keeps open, and arms the
    hand-over (its sessions open, the receiver ready) while they run; told to, it fires it.
    It stays until the migration ends."""
    cfg = {"docker_socket": prepared.src.docker_socket, "keep_source": ctx.request.keep_source}
    argv = ["agent", ctx.id, prepared.container.id, link_json(prepared.link), json.dumps(cfg)]
    return ctx.pool.session(prepared.src).conversation("source.py", argv, what="agent")


async def precopy(
    ctx: MigrationContext, prepared: Prepared, agent: Conversation
) -> AsyncIterator[MigrationEvent | Rounds]:
    """The rounds' events (none for stop-and-copy), then what they left."""
    request, journal = ctx.request, ctx.journal
    inputs, current = prepared.inputs, prepared.first_plan
    done: list[model.MeasuredRound] = []
    brownouts: list[float] = []
    sent_total = 0
    index = 0
    going = prepared.mode == "iterative" and round_cap(request) > 0
    while going:
        _unless_aborted(ctx, prepared)
        forecast = current.per_round[0]
        yield journal.emit(
            RoundStarted(index, False, forecast.bytes, forecast.seconds, journal.elapsed_s())
        )
        started = time.monotonic()
        meter = RoundMeter(index, forecast.bytes)
        async for reply in agent.exchange(f"round {index}", ROUND_SILENCE_S):
            if PROGRESS in reply:  # streamed, not journaled: the record keeps the rounds' ends
                yield meter.event(reply[PROGRESS], journal.elapsed_s())
            else:
                result = reply
        seconds = time.monotonic() - started
        sent_total += result["sent_bytes"]
        brownouts.append(result["freeze_s"])
        ran_prev = done[-1].seconds if done else 0.0
        inputs, measured = measure_round(inputs, prepared.rtt_s, index, result, seconds, ran_prev)
        done.append(measured)
        inputs = replace(inputs, size=result["state_bytes"])
        current = model.replan(inputs, done, request.policy)
        journal.record.measured_rounds.append(
            RoundRecord(
                bytes=result["sent_bytes"],
                transfer_s=result["send_s"],
                seconds=seconds,
                throughput=prepared.bandwidth,
                rtt=prepared.rtt_s,
                final=False,
                dump_s=result["freeze_s"],
                dumped_bytes=result["state_bytes"],
                stripes=result.get("stripes"),
                sessions_s=result.get("sessions_s"),
            )
        )
        throughput = result["sent_bytes"] / max(result["send_s"], 1e-3)
        yield journal.emit(
            RoundFinished(
                index=index,
                final=False,
                planned_bytes=forecast.bytes,
                sent_bytes=result["sent_bytes"],
                state_bytes=result["state_bytes"],
                seconds=seconds,
                freeze_s=result["freeze_s"],
                dirty_rate=measured.dirty_rate,
                throughput=throughput,
                link_utilisation=throughput / prepared.bandwidth if prepared.bandwidth else 0.0,
                predicted_remaining_rounds=current.rounds,
                predicted_downtime_s=current.downtime_s,
                t=journal.elapsed_s(),
            )
        )
        index += 1
        decision = after_round(request, inputs, done, current)
        current = decision.plan
        if decision.log:
            yield journal.log(decision.log)
        going = not decision.stop
    _unless_aborted(ctx, prepared)
    yield Rounds(index, current, inputs, tuple(done), tuple(brownouts), sent_total)


def measure_round(
    inputs: model.ModelInputs,
    rtt_s: float,
    index: int,
    result: dict[str, Any],
    seconds: float,
    ran_prev: float,
) -> tuple[model.ModelInputs, model.MeasuredRound]:
    """A round as the model takes it (`result` is the agent's answer, `seconds` the round as
    the engine timed it, `ran_prev` how long the previous round ran unfrozen), and the inputs
    with the fixed per-round work it measured."""
    ran_s = max(seconds - result["freeze_s"], 1e-3)
    # A round costs more than its bytes over the link: hashing and rebuilding the whole
    # state on each side. What a round after round 0 took beyond its transfer and round
    # trips is the fixed work the model re-plans with. Round 0 is no sample of it: it also
    # opens the sessions (and arms the hand-over) and hashes every page for the first time;
    # taken as every round's cost, it made the model stop iterating where the later, far
    # cheaper rounds still converge.
    if index > 0:
        overhead_s = ran_s - result["sent_bytes"] / inputs.bandwidth - inputs.round_trips * rtt_s
        inputs = replace(inputs, round_overhead=max(0.0, overhead_s))
    # What this round sent beyond round 0 is what the container dirtied since the previous
    # dump: the measured dirty rate.
    dirty_rate = inputs.dirty_rate if index == 0 else result["sent_bytes"] / max(ran_prev, 1e-3)
    measured = model.MeasuredRound(
        bytes=result["sent_bytes"],
        seconds=ran_s,
        dirty_rate=dirty_rate,
        # Small rounds cannot fill the link: the model's B (the probed rate less the
        # stream's own per-byte work, from the costs) is what a round gets.
        throughput=inputs.bandwidth,
    )
    return inputs, measured


def _unless_aborted(ctx: MigrationContext, prepared: Prepared) -> None:
    if ctx.aborted.is_set():
        raise MigrationFailed("aborted by the operator before the final round", prepared.src.name)
