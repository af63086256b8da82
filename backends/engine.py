"""The migration engine: move a running container from a node of one cluster to a node of
another, with the least downtime the link allows, and never lose it.

Phases, p.haul-shaped (small, explicit, the source resumed on any failure), each in its module:
  preflight  (preflight.py) resolve the container and the target; refuse what cannot move
             safely; lock the container on its node; open the node-to-node link; ship the image
             if the target lacks it; create the target container with the same configuration;
             measure the path (RTT, throughput) and the dirty rate; plan with the model
  precopy    (precopy.py, stop_rules.py) rounds while the container runs: a `runc checkpoint
             --leave-running` (a short freeze) and only the pages the target does not hold yet;
             re-plan after each round from what it measured
  final      (handover.py) handed to a detached agent on the source node (remote/source.py
             `handover`): freeze, dump, send, restore on the target, commit, remove the source.
             It finishes or undoes the hand-over on its own if whimbrel dies meanwhile.
  cleanup    (cleanup.py) release the lock, revoke the link, write the history record
Any failure before the commit leaves the container running on the source and removes what was
made on the target. What a run leaves unsettled, `recover` (recovery.py) settles later.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace

from whimbrel.backends import failpoints
from whimbrel.backends.config import Node
from whimbrel.backends.costs import DEFAULT_COSTS, Costs
from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.errors import UsageError, WhimbrelError
from whimbrel.backends.events import MigrationEvent, MigrationFinished, Phase
from whimbrel.backends.handover import HandoverUnsettled, final_round, hand_over
from whimbrel.backends.hooks import MigrationHooks, hook_env, select_hooks
from whimbrel.backends.inventory import ContainerInfo, Inventory, fetch_inventory
from whimbrel.backends.migration_context import Journal, MigrationContext, PhaseRun
from whimbrel.backends.migration_record import Ending, MigrationRecord, Subject, Timing
from whimbrel.backends.migration_request import MODES, MigrationFailed, MigrationRequest, Mode
from whimbrel.backends.outcome import Delivered, Outcome
from whimbrel.backends.precopy import open_agent, precopy
from whimbrel.backends.preflight import preflight
from whimbrel.backends.recovery import Recovery, recover, this_process
from whimbrel.backends.ssh import SessionPool
from whimbrel.backends.units import format_duration

# The engine's public names, wherever they live (the app and benchmarks import them from here).
__all__ = [
    "MODES",
    "HandoverUnsettled",
    "Migration",
    "MigrationFailed",
    "MigrationRequest",
    "Mode",
    "Recovery",
    "recover",
]


class Migration:
    """One migration; iterate `events()` to run it, call `abort()` to roll it back."""

    def __init__(self, pool: SessionPool, request: MigrationRequest, costs: Costs = DEFAULT_COSTS):
        self.pool = pool
        self.request = request
        self.id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        journal = Journal(MigrationRecord(self.id, time.time(), this_process()))
        # failpoints: inert unless whimbrel's own fault tests arm them (backends/failpoints.py).
        self._ctx = MigrationContext(self.id, pool, request, costs, failpoints.armed(), journal)

    def abort(self) -> None:
        """Roll back at the next round boundary; too late once the final round began."""
        self._ctx.aborted.set()

    async def events(self) -> AsyncIterator[MigrationEvent]:
        request, journal = self.request, self._ctx.journal
        yield journal.phase(Phase.PREFLIGHT, f"{request.container} -> {request.target}")
        src_node: Node | None = None
        outcome = Outcome()
        hooks = MigrationHooks((), {})
        try:
            async with AsyncExitStack() as stack:
                try:
                    inventory = await fetch_inventory(self.pool)
                    container = inventory.resolve(request.container)
                    src_node = self.pool.config.node(container.node)
                    dst_node = self._target(container, inventory)
                    journal.record.subject = Subject(
                        container.ref, container.id, src_node.name, dst_node.name
                    )
                    journal.record.mode = request.mode
                    hooks = MigrationHooks(
                        select_hooks(self.pool.config, src_node, dst_node, container.labels),
                        hook_env(self.id, container.name, src_node, dst_node),
                    )
                    journal.record.hook_names = tuple(h.name for h in hooks.hooks)
                    journal.save()
                    async for event in self._run(
                        stack, container, src_node, dst_node, outcome, hooks
                    ):
                        yield event
                except (WhimbrelError, OSError) as exc:
                    if outcome.unsettled():  # the source's daemon has the last word
                        outcome.error, outcome.running_on = str(exc), "unknown"
                        yield journal.log(str(exc), "error")  # nothing to roll back from here
                    else:
                        running_on = getattr(exc, "running_on", None) or (
                            src_node.name if src_node else "unknown"
                        )
                        outcome.error, outcome.running_on = str(exc), running_on
                        yield journal.phase(Phase.ROLLBACK, str(exc))
                        if src_node and running_on == src_node.name and hooks.ran("before_freeze"):
                            for run in await hooks.run("abort"):  # what before_freeze changed
                                yield journal.log(run.summary(), run.level)
        except (WhimbrelError, OSError) as exc:
            # Undoing preflight's work failed (a node went away meanwhile): the outcome stands;
            # the record stays pending, for `recover` to finish the cleanup.
            outcome.cleanup_failed(f"cleanup: {exc}")
            yield journal.log(
                f"cleanup incomplete ({exc}): `whimbrel recover` finishes it", "warning"
            )
        # The exit stack has undone what preflight made (target container, link, lock).
        if fill := outcome.lazy_fill:
            yield journal.log(
                f"lazy restore: {fill['pages']} of {fill['of']} pages filled "
                f"{format_duration(fill['fill_s'])} after the restore reached the daemon"
            )
        if unfilled := outcome.lazy_fill_unconfirmed():
            outcome.warnings.append(unfilled)
            yield journal.log(unfilled, "error")
        if outcome.ok:
            yield journal.phase(Phase.DONE, f"running on {request.target}")
        else:
            yield journal.phase(Phase.FAILED, outcome.error or "")
        yield self._finish(outcome, hooks)

    def _target(self, container: ContainerInfo, inventory: Inventory) -> Node:
        """The target node, once nothing refuses moving `container` there (it runs on its
        source meanwhile: a refusal says so)."""
        if container.node == self.request.target:
            raise UsageError(f"{container.ref} already runs on {self.request.target}")
        dst = self.pool.config.node(self.request.target)
        src = self.pool.config.node(container.node)
        for node in (src, dst):
            if self.pool.config.clusters[node.cluster].read_only:
                raise UsageError(f"cluster {node.cluster} is read-only: no migration from or to it")
        target = next(n for n in inventory.nodes if n.node == dst.name)
        if not target.reachable:
            raise WhimbrelError(f"target {dst.name} is not reachable: {target.error}")
        return dst

    async def _run(
        self,
        stack: AsyncExitStack,
        container: ContainerInfo,
        src: Node,
        dst: Node,
        outcome: Outcome,
        hooks: MigrationHooks,
    ) -> AsyncIterator[MigrationEvent]:
        """Preflight, the rounds, the hand-over; the exit stack holds what undoes preflight."""
        ctx = self._ctx
        journal = ctx.journal
        prepared_by = PhaseRun(preflight(ctx, stack, container, src, dst, outcome))
        async for event in prepared_by:
            yield event
        prepared = prepared_by.result
        if prepared.mode == "iterative":
            yield journal.phase(Phase.PRECOPY)
        else:
            yield journal.log("stop-and-copy")
        rounds_from = journal.elapsed_s()
        agent = await stack.enter_async_context(open_agent(ctx, prepared))
        rounds_run = PhaseRun(precopy(ctx, prepared, agent))
        async for event in rounds_run:
            yield event
        rounds = rounds_run.result
        handed_over = PhaseRun(hand_over(ctx, prepared, rounds, agent, outcome, hooks))
        async for event in handed_over:
            yield event
        final = handed_over.result
        journal.record.timing = Timing(
            rounds_from, journal.elapsed_s() - rounds_from, rounds.count, rounds.plan.downtime_s
        )
        finished = final_round(journal, prepared, rounds, final)
        if finished:
            yield journal.emit(finished)
        parts = DowntimeParts.from_json(final.get("parts"))
        if parts:
            parts = parts.with_answer(prepared.rtt_s / 2)
            yield journal.log(f"downtime {parts.summary()}")
        if said := hooks.inside_downtime():
            yield journal.log(said)
        if why := final.get("lazy_unavailable"):
            yield journal.log(f"restored eagerly: no lazy restore on {dst.name} ({why})", "warning")
        yield journal.phase(Phase.CLEANUP)
        first_plan = prepared.first_plan
        outcome.ok, outcome.running_on = True, dst.name
        outcome.delivered = Delivered(
            mode=prepared.mode,
            rounds=rounds.count,
            downtime_s=final.get("downtime_s"),
            downtime_parts=parts,
            predicted_downtime_s=first_plan.downtime_s,
            predicted_downtime_parts=first_plan.downtime_parts,
            predicted_total_time_s=first_plan.total_time_s,
            predicted_bytes=first_plan.bytes_sent,
            bytes_sent=rounds.sent_bytes + final.get("sent_bytes", 0),
            brownouts_s=rounds.brownouts_s,
            handover=final,
        )

    def _finish(self, outcome: Outcome, hooks: MigrationHooks) -> MigrationFinished:
        req, delivered = self.request, outcome.delivered
        journal = self._ctx.journal
        record = journal.record
        event = MigrationFinished(
            ok=outcome.ok,
            container=record.subject.container if record.subject else req.container,
            src=record.subject.src if record.subject else "?",
            dst=req.target,
            running_on=outcome.running_on,
            mode=delivered.mode if delivered else record.mode or req.mode,
            rounds=delivered.rounds if delivered else 0,
            downtime_s=delivered.downtime_s if delivered else None,
            predicted_downtime_s=delivered.predicted_downtime_s if delivered else None,
            total_time_s=journal.elapsed_s(),
            predicted_total_time_s=delivered.predicted_total_time_s if delivered else None,
            bytes_sent=delivered.bytes_sent if delivered else 0,
            predicted_bytes=delivered.predicted_bytes if delivered else None,
            brownouts_s=delivered.brownouts_s if delivered else (),
            downtime_parts=delivered.downtime_parts if delivered else None,
            predicted_downtime_parts=delivered.predicted_downtime_parts if delivered else None,
            lazy_restore=bool(delivered and delivered.handover.get("lazy_restore")),
            lazy_fill_s=(outcome.lazy_fill or {}).get("fill_s"),
            hooks=tuple(hooks.runs),
            error=outcome.error,
            t=journal.elapsed_s(),
        )
        journal.emit(event)
        pending_for = outcome.pending_for()
        record.ending = Ending(
            finished=event,
            # What is left to settle stays pending, for `recover`.
            status="pending" if pending_for else "done" if event.ok else "failed",
            pending_for=pending_for,
            warnings=outcome.warnings,
            handover_result=delivered.handover if delivered else None,
            events=journal.events,
        )
        path = journal.save()
        return replace(event, record=str(path))
