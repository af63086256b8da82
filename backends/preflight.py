"""Preflight: everything a migration makes and measures before its first round. Both nodes
pass the doctor's required checks, the container is locked on its node, the link opened, the
image shipped if the target lacks it, the target container created (not started), the path
and the dirty rate measured, and the rounds planned. Each thing made is pushed on the
migration's exit stack with the step that undoes it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, replace
from typing import Any, Literal

from whimbrel.backends import model
from whimbrel.backends.channel import LINK_TTL_MINUTES, NodeLink, open_link
from whimbrel.backends.cleanup import forget_decision, release_lock, settle_target
from whimbrel.backends.config import Node
from whimbrel.backends.container_spec import create_body, refuse_unmovable
from whimbrel.backends.costs import Costs
from whimbrel.backends.dirty import DirtyReport
from whimbrel.backends.docker_engine import DockerEngine, DockerError, docker_engine
from whimbrel.backends.doctor import require_ready
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.events import MigrationEvent
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.migration_context import MigrationContext
from whimbrel.backends.migration_record import LinkRecord
from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.node_actions import link_json, source_action, target_action, write_target
from whimbrel.backends.outcome import Outcome
from whimbrel.backends.probes import measure_dirty, measure_link_throughput, probe_rtt
from whimbrel.backends.ssh import NodeSession

RunMode = Literal["iterative", "stop-and-copy"]


@dataclass(frozen=True)
class Prepared:
    """What preflight made and measured, for the rounds and the hand-over."""

    container: ContainerInfo
    src: Node
    dst: Node
    link: NodeLink  # striped for the measured RTT
    target_id: str  # the target container: created, not started
    rtt_s: float
    bandwidth: float  # bytes/s the link's stripes carried
    inputs: model.ModelInputs  # the model's inputs, as measured
    first_plan: model.Plan  # the plan before the rounds: the outcome's predictions
    mode: RunMode


async def preflight(
    ctx: MigrationContext,
    stack: AsyncExitStack,
    container: ContainerInfo,
    src: Node,
    dst: Node,
    outcome: Outcome,
) -> AsyncIterator[MigrationEvent | Prepared]:
    """Preflight's events, then what it prepared."""
    journal = ctx.journal
    src_session, dst_session = ctx.pool.session(src), ctx.pool.session(dst)
    src_api = await stack.enter_async_context(docker_engine(src_session))
    dst_api = await stack.enter_async_context(docker_engine(dst_session))
    # The doctor's required checks of both nodes (the source's reach of the target among
    # them), asked while the container is inspected: a node unfit says why before anything
    # is made.
    inspect, _ = await asyncio.gather(
        src_api.inspect(container.id), require_ready(ctx.pool, src, dst)
    )
    refuse_unmovable(inspect)

    yield journal.log(await _lock_source(ctx, stack, container, src, outcome))

    # The dirty rate is sampled on the source while the target is set up and the path
    # probed (seconds of sampling the preflight would otherwise wait for on its own).
    sampling = asyncio.create_task(measure_dirty(ctx.pool, container, seconds=2.0))
    stack.push_async_callback(_settle, sampling)
    link = await stack.enter_async_context(
        open_link(
            ctx.pool,
            src,
            dst,
            keep=outcome.unsettled,
            revoked=outcome.link_revoked,
            ttl_minutes=1 if "link.short-ttl" in ctx.failpoints else LINK_TTL_MINUTES,
        )
    )
    kept_link = LinkRecord(link.id, link.src_dir, link.dst_dir)
    journal.record.link = kept_link
    journal.save()
    yield journal.log(f"link {src.name} -> {dst.name} ({dst.wan_address}): ephemeral key")

    image = inspect["Config"]["Image"]
    where = _target_spec(ctx, dst, inspect)
    await write_target(dst_session, link, where)
    async for event in _ship_image(ctx, src_session, dst_api, link, image):
        yield event
    target_id = await _create_target(
        ctx, stack, dst, dst_api, link, container.name, inspect, where, outcome
    )

    rtt_s, bandwidth = await _measure_path(ctx, src, dst, link)
    link = link.for_rtt(rtt_s)
    kept_link.stripes = link.stripes
    dirty = await sampling
    size = float(container.memory_bytes or dirty.memory_bytes)
    inputs = model_inputs_for(
        ctx.costs,
        ctx.request,
        size=size,
        dirty_rate=dirty.bytes_per_s,
        distinct_share=dirty.distinct_share or 1.0,
        bandwidth=bandwidth,
        rtt_s=rtt_s,
    )
    mode, first_plan = choose_plan(ctx.request, inputs)
    journal.record.mode, journal.record.policy = mode, ctx.request.policy
    journal.record.inputs, journal.record.plan = first_plan.inputs, first_plan
    yield journal.log(_measured(ctx.request, link, bandwidth, dirty, first_plan))
    yield Prepared(container, src, dst, link, target_id, rtt_s, bandwidth, inputs, first_plan, mode)


async def _lock_source(
    ctx: MigrationContext,
    stack: AsyncExitStack,
    container: ContainerInfo,
    src: Node,
    outcome: Outcome,
) -> str:
    """The container locked on its node for this migration (released when preflight's work
    is undone); what the source can do, as the log says it."""
    session = ctx.pool.session(src)
    prepared = await source_action(
        session, "prepare", ctx.id, container.id, src.docker_socket, json.dumps(ctx.failpoints)
    )
    stack.push_async_callback(release_lock, ctx.id, session, container.id, outcome)
    return (
        f"source {src.name}: CRIU {prepared['criu']}, "
        + ("soft-dirty tracking" if prepared["soft_dirty"] else "no soft-dirty tracking")
        + ": pre-copy rounds are full --leave-running dumps, only changed pages sent"
    )


def _measured(
    request: MigrationRequest,
    link: NodeLink,
    bandwidth: float,
    dirty: DirtyReport,
    plan: model.Plan,
) -> str:
    """What preflight measured (`bandwidth`: the path's, not the model's B) and planned, in
    one log line."""
    inputs = plan.inputs
    distinct = inputs.distinct_share
    return (
        ("path as measured before: " if request.path else "measured: ")
        + f"RTT {inputs.rtt * 1e3:.1f} ms, {bandwidth * 8 / 1e6:.0f} Mbit/s "
        f"over {link.stripes} stripe{'s' if link.stripes > 1 else ''}, "
        f"dirty {dirty.bytes_per_s / 2**20:.2f} MiB/s ({dirty.method}), "
        f"state {inputs.size / 2**20:.0f} MiB"
        + (f" ({distinct:.0%} of its pages distinct)" if distinct < 0.995 else "")
        + f"; plan: {plan.reason}"
    )


async def _measure_path(
    ctx: MigrationContext, src: Node, dst: Node, link: NodeLink
) -> tuple[float, float]:
    """The path's RTT and what the link's stripes carry, unless the request brings them (an
    evacuation measured the path before its migrations began: probed during them, the RTT
    would be the others' queue and the throughput a guess at a share)."""
    if ctx.request.path is not None:
        return ctx.request.path.rtt_s, ctx.request.path.bandwidth
    rtt = await probe_rtt(ctx.pool, src, dst, count=5)
    bandwidth = await measure_link_throughput(
        ctx.pool, link.for_rtt(rtt.rtt_s), ctx.request.probe_bytes, rtt.rtt_s
    )
    return rtt.rtt_s, bandwidth


def _target_spec(ctx: MigrationContext, dst: Node, inspect: dict[str, Any]) -> dict[str, Any]:
    """What the target's receiver is told, written by the operator: the source can only send
    data, never choose where it goes or which image the target loads."""
    return {
        "migration": ctx.id,
        "docker_socket": dst.docker_socket,
        "image": {"ref": inspect["Config"]["Image"], "id": inspect["Image"]},
        "failpoints": ctx.failpoints,
        "lazy_restore": ctx.request.lazy_restore,
    }


def choose_plan(request: MigrationRequest, inputs: model.ModelInputs) -> tuple[RunMode, model.Plan]:
    """The mode and the plan before the rounds: the request's fixed rounds, else its mode,
    else the policy's verdict; an iterative plan has at least one round."""
    first_plan = model.plan(inputs, request.policy)
    mode = request.mode
    if request.rounds is not None:
        mode = "iterative" if request.rounds else "stop-and-copy"
        first_plan = model.evaluate(inputs, request.rounds)
    elif mode == "auto":
        mode = "iterative" if first_plan.verdict == "iterate" else "stop-and-copy"
    if mode == "stop-and-copy":
        return mode, model.evaluate(inputs, 0)
    return "iterative", first_plan if first_plan.rounds else model.evaluate(inputs, 1)


def model_inputs_for(
    costs: Costs,
    request: MigrationRequest,
    *,
    size: float,
    dirty_rate: float,
    distinct_share: float,
    bandwidth: float,
    rtt_s: float,
) -> model.ModelInputs:
    """What the model plans a request from, on these measurements (an evacuation's planner
    asks it with a share of the link)."""
    inputs = costs.model_inputs(
        size=size,
        dirty_rate=dirty_rate,
        distinct_share=distinct_share,
        bandwidth=bandwidth,
        rtt=rtt_s,
        downtime_target=request.downtime_target_s,
        max_rounds=request.max_rounds,
        lazy_restore=request.lazy_restore,
    )
    return replace(inputs, brownout_weight=request.brownout_weight)


async def _ship_image(
    ctx: MigrationContext, src: NodeSession, dst_api: DockerEngine, link: NodeLink, image: str
) -> AsyncIterator[MigrationEvent]:
    """The image, node to node (`docker save | docker load`), if the target lacks it."""
    try:
        await dst_api.inspect_image(image)
    except DockerError as exc:
        if exc.status != 404:
            raise
        yield ctx.journal.log(f"target lacks image {image}: shipping it (docker save | load)")
        shipped = await source_action(
            src, "ship-image", ctx.id, image, link_json(link), timeout=1800
        )
        yield ctx.journal.log(f"image shipped: {shipped['bytes']} bytes")


async def _create_target(
    ctx: MigrationContext,
    stack: AsyncExitStack,
    dst: Node,
    api: DockerEngine,
    link: NodeLink,
    name: str,
    inspect: dict[str, Any],
    where: dict[str, Any],
    outcome: Outcome,
) -> str:
    """The target's decision record and its container, configured as the source's; then
    the receiver told where the container's layer, volumes and checkpoint live."""
    session = ctx.pool.session(dst)
    # The target's decision record decides where the container lives (receiver.py);
    # dropped last, once every party has acted on it.
    await target_action(session, "expect", ctx.id)
    stack.push_async_callback(forget_decision, ctx.id, session, outcome)
    target_id = await api.create(name, create_body(inspect))
    ctx.journal.record.target_id = target_id
    ctx.journal.save()
    stack.push_async_callback(settle_target, ctx.id, session, dst, target_id, outcome)
    target = await api.inspect(target_id)
    root = (await api.info())["DockerRootDir"]
    where |= {
        "container": target_id,
        "upper_dir": target["GraphDriver"]["Data"]["UpperDir"],
        "checkpoint_dir": f"{root}/containers/{target_id}/checkpoints/whimbrel",
        "volumes": {
            m["Name"]: m["Source"] for m in target.get("Mounts") or () if m["Type"] == "volume"
        },
    }
    await write_target(session, link, where)
    return target_id


async def _settle(task: asyncio.Task[Any]) -> None:
    """A side task the migration no longer waits for: cancelled, its outcome collected."""
    task.cancel()
    with suppress(asyncio.CancelledError, WhimbrelError, OSError):
        await task
