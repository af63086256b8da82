"""The hand-over: the final round, run by the daemon the source's agent armed during the rounds
(remote/source.py `handover`): fired, followed through its log to its end, settled from the
target's decision record when the daemon could not learn the verdict itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.events import MigrationEvent, Phase, RoundFinished, RoundStarted
from whimbrel.backends.hooks import MigrationHooks
from whimbrel.backends.migration_context import Journal, MigrationContext
from whimbrel.backends.migration_record import RoundRecord
from whimbrel.backends.migration_request import MigrationFailed
from whimbrel.backends.node_actions import settle_on_source, settle_on_target
from whimbrel.backends.outcome import Outcome
from whimbrel.backends.precopy import Rounds
from whimbrel.backends.preflight import Prepared
from whimbrel.backends.ssh import (
    CommandFailed,
    Conversation,
    NodeSession,
    NodeUnreachable,
    remote_script,
)

# How long the hand-over is followed through a source out of reach (without a new line of its
# log) before giving up on it.
FOLLOW_GRACE_S = 120.0


class HandoverUnsettled(MigrationFailed):
    """The source went out of reach while its daemon hands the container over: where it runs
    is for the daemon's outcome to say, which `recover` reads once the node answers again."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(
            f"lost {node} during the hand-over ({reason}); it goes on there on its own: the "
            "next whimbrel run (e.g. `whimbrel ls`) settles it and says where the container runs",
            "unknown",
        )


async def hand_over(
    ctx: MigrationContext,
    prepared: Prepared,
    rounds: Rounds,
    agent: Conversation,
    outcome: Outcome,
    hooks: MigrationHooks,
) -> AsyncIterator[MigrationEvent | dict[str, Any]]:
    """The hand-over's events, then the daemon's account of its end. One that did not end
    on the target raises MigrationFailed (running_on "unknown" while it is unsettled). The
    before_freeze hooks run first (one failing rolls back), the commit hooks at the commit."""
    journal, src, dst = ctx.journal, prepared.src, prepared.dst
    src_session = ctx.pool.session(src)
    for run in await hooks.run("before_freeze"):
        yield journal.log(run.summary(), run.level)
        if not run.ok:
            raise MigrationFailed(f"{run.summary()}: nothing was frozen", src.name)
    # From here the source node's daemon carries the hand-over to its end, with or without
    # us: the final phase starts when it does.
    journal.record.handover = True
    journal.save()
    # Until its end is known, nothing here may undo anything: see follow.
    outcome.handover = "running"
    final_plan = rounds.plan.per_round[-1]
    try:
        await agent.ask("handover", timeout=60)
    except NodeUnreachable as exc:  # fired or not, the daemon's log will say
        yield journal.log(f"firing the hand-over: {exc}", "warning")
    yield journal.phase(Phase.FINAL, "freeze, dump, send, restore (run by the source node)")
    yield journal.emit(
        RoundStarted(rounds.count, True, final_plan.bytes, final_plan.seconds, journal.elapsed_s())
    )
    final: dict[str, Any] = {}
    async for item in follow(journal, src_session, ctx.id):
        if isinstance(item, MigrationEvent):
            yield item
        elif item["kind"] == "committed":  # the target's now: clients may follow at once
            for run in await hooks.run("commit"):
                yield journal.log(run.summary(), run.level)
        else:
            final = item
    if final.get("unsettled"):
        yield journal.log(f"{final.get('error')}: settling from {dst.name}'s record", "warning")
        final = await _settle(ctx, prepared, final)
    if final.get("unsettled"):
        # The source stays frozen, the target fenced or serving as its record says:
        # nothing is undone here; the record stays pending for `whimbrel recover`.
        raise MigrationFailed(final.get("error", "the hand-over is unsettled"), "unknown")
    outcome.handover = "source left" if final.get("source_left") else "settled"
    if final.get("source_left"):
        outcome.warnings.append(
            f"the source container on {src.name} is stopped but not removed yet: "
            "`whimbrel recover` removes it"
        )
    if not final.get("ok"):
        running = {"source": src.name, "target": dst.name}.get(
            final.get("running_on", ""), "nowhere (see the log)"
        )
        raise MigrationFailed(final.get("error", "the hand-over did not finish"), running)
    if not hooks.ran("commit"):  # committed as the target's record said, not the log
        for run in await hooks.run("commit"):
            yield journal.log(run.summary(), run.level)
    yield final


async def follow(
    journal: Journal, session: NodeSession, migration: str
) -> AsyncIterator[MigrationEvent | dict[str, Any]]:
    """The hand-over as the source's daemon logs it (its "committed" step too, as it is),
    then its end (the log's last line). The daemon goes on without us, so a lost connection
    is made again and the log read on from where it was; only when the source stays out of
    reach for FOLLOW_GRACE_S does this give up, with the hand-over's end unknown
    (HandoverUnsettled)."""
    seen = 0
    lost_since: float | None = None
    while True:
        read, before = 0, seen
        try:
            lines = session.stream_python(
                remote_script("source.py"), ["follow", migration], timeout=3600
            )
            async with aclosing(lines):
                async for line in lines:
                    read += 1
                    if read <= seen:  # read again after a lost connection
                        continue
                    seen = read
                    step = json.loads(line)
                    if step["kind"] == "end":
                        yield step
                        return
                    event = _log_step(journal, step)
                    if event:
                        yield event
                    if step["kind"] == "committed":
                        yield step
            lost = "the log ended before the hand-over did"
        except (NodeUnreachable, CommandFailed) as exc:
            lost = str(exc)
        now = time.monotonic()
        lost_since = now if lost_since is None or seen > before else lost_since
        if now - lost_since > FOLLOW_GRACE_S:
            raise HandoverUnsettled(session.node.name, lost)
        yield journal.log(f"following the hand-over: {lost}; trying again", "warning")
        await asyncio.sleep(1.0)


def _log_step(journal: Journal, step: dict[str, Any]) -> MigrationEvent | None:
    """One line of the daemon's log as the operator sees it (some go unsaid)."""
    kind = step["kind"]
    if kind == "sent":
        return journal.phase(Phase.RESTORE, f"{step['sent_bytes']} bytes sent")
    if kind == "dumped":
        return journal.log(f"dumped in {step['dump_s']:.2f} s: sending")
    if kind == "restored":
        lazily = " lazily (its memory fills from the page files there)" if step.get("lazy") else ""
        return journal.log(f"restored on the target{lazily}, fenced until it records the commit")
    if kind == "committed":
        return journal.log("committed: the target serves, the source goes")
    if kind in ("failed", "warning"):
        return journal.log(step.get("error") or step.get("text", ""), "error")
    return None


async def _settle(
    ctx: MigrationContext, prepared: Prepared, final: dict[str, Any]
) -> dict[str, Any]:
    """A hand-over whose daemon could not learn the verdict (or died): the operator reaches
    both nodes even when they cannot reach each other, so it settles it now from the
    target's record (aborted unless committed), or leaves it unsettled for `recover`."""
    dst = prepared.dst
    try:
        verdict = await settle_on_target(
            ctx.pool.session(dst), ctx.id, dst.docker_socket, prepared.target_id
        )
        if verdict not in ("committed", "aborted"):
            return final
        settled = await settle_on_source(
            ctx.pool.session(prepared.src), ctx.id, prepared.container.id, verdict
        )
    except WhimbrelError as exc:
        return final | {"error": f"{final.get('error')}; settling it: {exc}"}
    errors = "; ".join(filter(None, (final.get("error"), settled.get("error"))))
    return final | settled | {"unsettled": False, "error": errors}


def final_round(
    journal: Journal, prepared: Prepared, rounds: Rounds, final: dict[str, Any]
) -> RoundFinished | None:
    """The final round as the daemon measured it, kept in the record's rounds; none when the
    commit's answer was lost (no clock saw the downtime)."""
    if "downtime_s" not in final:
        return None
    restore_s = final.get("restore_s") or 0.0
    journal.record.measured_rounds.append(
        RoundRecord(
            bytes=final["sent_bytes"],
            transfer_s=max(final["send_s"] - restore_s, 0.0),
            seconds=final["downtime_s"],
            throughput=prepared.bandwidth,
            rtt=prepared.rtt_s,
            final=True,
            dump_s=final["dump_s"],
            dumped_bytes=final["state_bytes"],
            stripes=final.get("stripes"),
            restore_s=restore_s,
            lazy=bool(final.get("lazy_restore")),
        )
    )
    throughput = final["sent_bytes"] / max(final["send_s"], 1e-3)
    return RoundFinished(
        index=rounds.count,
        final=True,
        planned_bytes=rounds.plan.per_round[-1].bytes,
        sent_bytes=final["sent_bytes"],
        state_bytes=final["state_bytes"],
        seconds=final["downtime_s"],
        freeze_s=final["downtime_s"],
        dirty_rate=rounds.done[-1].dirty_rate if rounds.done else rounds.inputs.dirty_rate,
        throughput=throughput,
        link_utilisation=throughput / prepared.bandwidth,
        predicted_remaining_rounds=0,
        predicted_downtime_s=rounds.plan.downtime_s,
        t=journal.elapsed_s(),
    )
