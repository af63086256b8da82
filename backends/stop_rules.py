"""When pre-copy stops: every rule, in one pure function of the rounds measured so far.

The model re-plans after each round; on top of its plan the measured residual has the last
word in two ways: a residual still falling fast earns one round more than the model wants,
and a residual that stopped shrinking ends the rounds whatever the model still wants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whimbrel.backends import model
from whimbrel.backends.migration_request import MigrationRequest

STILL_FALLING = "the residual is still falling: one more round"
STOPPED_SHRINKING = "the residual stopped shrinking: stopping pre-copy here"


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str  # which rule decided, in words
    log: str | None  # the line the migration logs for it (most decisions go unsaid)
    plan: model.Plan  # what the next round, or the final one, is predicted by


def round_cap(request: MigrationRequest) -> int:
    """The most pre-copy rounds: the request's fixed count, else its max_rounds."""
    return request.max_rounds if request.rounds is None else request.rounds


def after_round(
    request: MigrationRequest,
    inputs: model.ModelInputs,
    done: Sequence[model.MeasuredRound],
    plan: model.Plan,
) -> StopDecision:
    """Stop or go on after the rounds in `done`, given the model's re-plan from them."""
    cap = round_cap(request)
    if request.rounds is not None:
        return StopDecision(len(done) >= cap, "the request fixed the rounds", None, plan)
    if plan.rounds == 0 and len(done) < cap and _still_falling(request, done, plan):
        # The model puts the floor here, but the last round still took more off the residual
        # than the floor tolerance: one more round measures where it is.
        one_more = model.replan(inputs, done, request.policy, rounds=1)
        return StopDecision(False, "the residual is still falling", STILL_FALLING, one_more)
    if plan.rounds == 0:
        return StopDecision(True, "the model wants no more rounds", None, plan)
    if request.policy == "latency-aware" and len(done) >= 2 and done[-1].bytes >= done[-2].bytes:
        # The residual did not shrink at all: the rounds sit on their floor whatever the
        # model's estimate of it; more rounds would only add brownouts. (A slow decline is
        # left to the model: at a dirty ratio near 1 each round takes a little, and together
        # they can take a fifth off the downtime.)
        return StopDecision(True, "the residual stopped shrinking", STOPPED_SHRINKING, plan)
    if len(done) >= cap:
        return StopDecision(True, "the round cap is reached", None, plan)
    return StopDecision(False, "the model wants more rounds", None, plan)


def _still_falling(
    request: MigrationRequest, done: Sequence[model.MeasuredRound], plan: model.Plan
) -> bool:
    """Latency-aware with its target out of reach: did the last pre-copy round take more off
    the residual than the floor tolerance (in downtime) the model stops within? The model's
    floor comes from one round's timing; measured shrinkage overrules it. Round 0 sends the
    whole state, so the first drop worth judging is between rounds 1 and 2."""
    if request.policy != "latency-aware" or len(done) < 3 or plan.meets_target:
        return False
    drop = done[-2].bytes - done[-1].bytes
    slack = plan.inputs.floor_tolerance * plan.floor_downtime_s
    return drop / done[-1].throughput > slack
