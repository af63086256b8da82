"""The migration engine: move a running container from a node of one cluster to a node of
another, with the least downtime the link allows, and never lose it.

Phases, p.haul-shaped (small, explicit, the source resumed on any failure):
  preflight  resolve the container and the target; refuse what cannot move safely; lock the
             container on its node; open the node-to-node link; ship the image if the target
             lacks it; create the target container with the same configuration; measure the
             path (RTT, throughput) and the dirty rate; plan with the latency-aware model
  precopy    rounds while the container runs: a `runc checkpoint --leave-running` (a short
             freeze) and only the pages the target does not hold yet; re-plan after each round
             from what it measured
  final      handed to a detached agent on the source node (remote/source.py `handover`):
             freeze, dump, send, restore on the target, commit, remove the source. It finishes
             or undoes the hand-over on its own if whimbrel dies meanwhile.
  cleanup    release the lock, revoke the link, write the history record
Any failure before the commit leaves the container running on the source and removes what was
made on the target.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing, suppress
from dataclasses import replace
from typing import Any

from whimbrel.backends import failpoints, model
from whimbrel.backends.channel import LINK_TTL_MINUTES, open_link
from whimbrel.backends.config import Node
from whimbrel.backends.costs import DEFAULT_COSTS, Costs
from whimbrel.backends.docker_api import DockerAPI, DockerError
from whimbrel.backends.errors import UsageError, WhimbrelError
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundStarted,
    event_json,
)
from whimbrel.backends.history import write_record
from whimbrel.backends.inventory import ContainerInfo, fetch_inventory
from whimbrel.backends.migration_request import MODES, MigrationFailed, MigrationRequest, Mode
from whimbrel.backends.node_actions import link_json, source_action, target_action, write_target
from whimbrel.backends.outcome import Delivered, Outcome
from whimbrel.backends.probes import measure_dirty, measure_link_throughput, probe_rtt
from whimbrel.backends.recovery import Recovery, recover, this_process
from whimbrel.backends.ssh import (
    CommandFailed,
    NodeSession,
    NodeUnreachable,
    SessionPool,
    remote_script,
)
from whimbrel.backends.stop_rules import after_round, round_cap

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


class HandoverUnsettled(MigrationFailed):
    """The source went out of reach while its daemon hands the container over: where it runs
    is for the daemon's outcome to say, which `recover` reads once the node answers again."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(
            f"lost {node} during the hand-over ({reason}); it goes on there on its own: the "
            "next whimbrel run (e.g. `whimbrel ls`) settles it and says where the container runs",
            "unknown",
        )


# How long the hand-over is followed through a source out of reach (without a new line of its
# log) before giving up on it.
FOLLOW_GRACE_S = 120.0


# Docker create fields reproduced on the target, from `docker inspect` of the source.
_CONFIG_KEYS = (
    "Hostname", "Domainname", "User", "Env", "Cmd", "Entrypoint", "WorkingDir", "Labels",
    "ExposedPorts", "StopSignal", "StopTimeout", "Tty", "OpenStdin", "StdinOnce", "Volumes",
    "Healthcheck",
)  # fmt: skip
_HOST_KEYS = (
    "Binds", "NetworkMode", "RestartPolicy", "Memory", "MemorySwap", "MemoryReservation",
    "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "CpusetCpus", "PidsLimit", "CapAdd",
    "CapDrop", "SecurityOpt", "Tmpfs", "ShmSize", "PortBindings", "ExtraHosts", "Ulimits",
    "LogConfig", "Init", "ReadonlyRootfs", "Mounts", "Dns", "DnsSearch", "DnsOptions",
    "Sysctls", "Privileged",
)  # fmt: skip


def create_body(inspect: dict[str, Any]) -> dict[str, Any]:
    config, host = inspect["Config"], inspect["HostConfig"]
    body = {k: config[k] for k in _CONFIG_KEYS if config.get(k) is not None}
    body["Image"] = config["Image"]
    body["HostConfig"] = {k: host[k] for k in _HOST_KEYS if host.get(k) is not None}
    return body


def refuse_unmovable(inspect: dict[str, Any]) -> None:
    """What whimbrel does not move yet is refused before anything is touched."""
    name = inspect["Name"].lstrip("/")
    for mount in inspect.get("Mounts") or ():
        if mount.get("Type") == "bind":
            raise UsageError(
                f"{name}: bind mount {mount.get('Source')} -> {mount.get('Destination')}: "
                "whimbrel does not move bind-mounted host data yet; use a named volume"
            )
    mode = (inspect.get("HostConfig") or {}).get("NetworkMode", "")
    if mode.startswith("container:"):
        raise UsageError(f"{name}: shares another container's network ({mode}); move that one")
    if not (inspect.get("State") or {}).get("Running"):
        raise UsageError(f"{name}: not running (only running containers are live-migrated)")


class Migration:
    """One migration; iterate `events()` to run it, call `abort()` to roll it back."""

    def __init__(self, pool: SessionPool, request: MigrationRequest, costs: Costs = DEFAULT_COSTS):
        self.pool = pool
        self.request = request
        self.costs = costs
        self.id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        self._aborted = asyncio.Event()
        self._t0 = time.monotonic()
        self._events: list[dict] = []
        self._record: dict[str, Any] = {
            "id": self.id,
            "started_at": time.time(),
            "owner": this_process(),
        }
        # Inert unless whimbrel's own fault tests arm them (backends/failpoints.py).
        self.failpoints = failpoints.armed()

    def abort(self) -> None:
        """Roll back at the next round boundary; too late once the final round began."""
        self._aborted.set()

    def _t(self) -> float:
        return time.monotonic() - self._t0

    def _emit(self, event: MigrationEvent) -> MigrationEvent:
        self._events.append(event_json(event))
        return event

    def _phase(self, phase: Phase, message: str = "") -> MigrationEvent:
        return self._emit(PhaseChanged(phase, self._t(), message))

    def _log(self, text: str, level: str = "info") -> MigrationEvent:
        return self._emit(LogLine(text, self._t(), level))

    async def events(self) -> AsyncIterator[MigrationEvent]:
        request = self.request
        yield self._phase(Phase.PREFLIGHT, f"{request.container} -> {request.target}")
        src_node: Node | None = None
        outcome = Outcome()
        try:
            async with AsyncExitStack() as stack:
                try:
                    container = await self._resolve()
                    src_node = self.pool.config.node(container.node)
                    dst_node = self.pool.config.node(request.target)
                    self._record |= {"container": container.ref, "container_id": container.id,
                                     "src": src_node.name, "dst": dst_node.name,
                                     "status": "pending", "mode": request.mode}  # fmt: skip
                    write_record(self._record)
                    async for event in self._run(stack, container, src_node, dst_node, outcome):
                        yield event
                except (WhimbrelError, OSError) as exc:
                    if outcome.unsettled():  # the source's daemon has the last word
                        outcome.error, outcome.running_on = str(exc), "unknown"
                        yield self._log(str(exc), "error")  # nothing to roll back from here
                    else:
                        running_on = getattr(exc, "running_on", None) or (
                            src_node.name if src_node else "unknown"
                        )
                        outcome.error, outcome.running_on = str(exc), running_on
                        yield self._phase(Phase.ROLLBACK, str(exc))
        except (WhimbrelError, OSError) as exc:
            # Undoing preflight's work failed (a node went away meanwhile): the outcome stands;
            # the record stays pending, for `recover` to finish the cleanup.
            outcome.cleanup_failed(f"cleanup: {exc}")
            yield self._log(
                f"cleanup incomplete ({exc}): `whimbrel recover` finishes it", "warning"
            )
        # The exit stack has undone what preflight made (target container, link, lock).
        if outcome.ok:
            yield self._phase(Phase.DONE, f"running on {request.target}")
        else:
            yield self._phase(Phase.FAILED, outcome.error or "")
        yield self._finish(outcome)

    async def _resolve(self) -> ContainerInfo:
        inventory = await fetch_inventory(self.pool)
        container = inventory.resolve(self.request.container)
        if container.node == self.request.target:
            raise UsageError(f"{container.ref} already runs on {self.request.target}")
        dst = self.pool.config.node(self.request.target)
        src = self.pool.config.node(container.node)
        for node in (src, dst):
            if self.pool.config.clusters[node.cluster].read_only:
                raise UsageError(f"cluster {node.cluster} is read-only: no migration from or to it")
        if not any(n.node == dst.name and n.reachable for n in inventory.nodes):
            raise WhimbrelError(f"target {dst.name} is not reachable")
        return container

    async def _run(
        self,
        stack: AsyncExitStack,
        container: ContainerInfo,
        src: Node,
        dst: Node,
        outcome: Outcome,
    ) -> AsyncIterator[MigrationEvent]:
        request = self.request
        src_session, dst_session = self.pool.session(src), self.pool.session(dst)
        src_api, dst_api = DockerAPI(src_session), DockerAPI(dst_session)
        inspect = await src_api.inspect(container.id)
        refuse_unmovable(inspect)

        prepared = await source_action(
            src_session, "prepare", self.id, container.id, src.docker_socket,
            json.dumps(self.failpoints),
        )  # fmt: skip
        stack.push_async_callback(self._release, src_session, container.id, outcome)
        yield self._log(
            f"source {src.name}: CRIU {prepared['criu']}, "
            + ("soft-dirty tracking" if prepared["soft_dirty"] else "no soft-dirty tracking")
            + ": pre-copy rounds are full --leave-running dumps, only changed pages sent"
        )

        # The dirty rate is sampled on the source while the target is set up and the path
        # probed (seconds of sampling the preflight would otherwise wait for on its own).
        sampling = asyncio.create_task(measure_dirty(self.pool, container, seconds=2.0))
        stack.push_async_callback(_settle, sampling)
        link = await stack.enter_async_context(
            open_link(
                self.pool,
                src,
                dst,
                keep=outcome.unsettled,
                ttl_minutes=1 if "link.short-ttl" in self.failpoints else LINK_TTL_MINUTES,
            )
        )
        self._record["link"] = {"id": link.id, "src_dir": link.src_dir, "dst_dir": link.dst_dir}
        write_record(self._record)
        yield self._log(f"link {src.name} -> {dst.name} ({dst.wan_address}): ephemeral key")

        image = inspect["Config"]["Image"]
        # Written by the operator: the source can only send data, never choose where it goes
        # or which image the target loads.
        where: dict[str, Any] = {
            "migration": self.id,
            "docker_socket": dst.docker_socket,
            "image": {"ref": image, "id": inspect["Image"]},
            "failpoints": self.failpoints,
        }
        await write_target(dst_session, link, where)
        try:
            await dst_api.request("GET", f"/images/{image}/json")
        except DockerError as exc:
            if exc.status != 404:
                raise
            yield self._log(f"target lacks image {image}: shipping it (docker save | load)")
            shipped = await source_action(
                src_session, "ship-image", self.id, image, link_json(link), timeout=1800
            )
            yield self._log(f"image shipped: {shipped['bytes']} bytes")

        # The target's decision record decides where the container lives (receiver.py);
        # dropped last, once every party has acted on it.
        await target_action(dst_session, "expect", self.id)
        stack.push_async_callback(self._forget, dst_session, outcome)
        name = container.name
        created = await dst_api.request(
            "POST", "/containers/create", query={"name": name}, body=create_body(inspect)
        )
        target_id = created["Id"]
        self._record["target_id"] = target_id
        write_record(self._record)
        stack.push_async_callback(self._settle_target, dst_session, dst, target_id, outcome)
        target = await dst_api.inspect(target_id)
        root = (await dst_api.request("GET", "/info"))["DockerRootDir"]
        where |= {
            "container": target_id,
            "upper_dir": target["GraphDriver"]["Data"]["UpperDir"],
            "checkpoint_dir": f"{root}/containers/{target_id}/checkpoints/whimbrel",
            "volumes": {
                m["Name"]: m["Source"] for m in target.get("Mounts") or () if m["Type"] == "volume"
            },
        }
        await write_target(dst_session, link, where)

        rtt = await probe_rtt(self.pool, src, dst, count=5)
        link = link.for_rtt(rtt.rtt_s)
        self._record["link"]["stripes"] = link.stripes
        bandwidth = await measure_link_throughput(self.pool, link, request.probe_bytes, rtt.rtt_s)
        dirty = await sampling
        size = float(container.memory_bytes or dirty.memory_bytes)
        inputs = self.costs.model_inputs(
            size=size,
            dirty_rate=dirty.bytes_per_s,
            bandwidth=bandwidth,
            rtt=rtt.rtt_s,
            downtime_target=request.downtime_target_s,
            max_rounds=request.max_rounds,
        )
        inputs = replace(inputs, brownout_weight=request.brownout_weight)
        first = model.plan(inputs, request.policy)
        mode = request.mode
        if request.rounds is not None:
            mode = "iterative" if request.rounds else "stop-and-copy"
            first = model.evaluate(inputs, request.rounds)
        elif mode == "auto":
            mode = "iterative" if first.verdict == "iterate" else "stop-and-copy"
        if mode == "stop-and-copy":
            first = model.evaluate(inputs, 0)
        elif first.rounds == 0:
            first = model.evaluate(inputs, 1)
        self._record |= {"mode": mode, "policy": request.policy, "inputs": first.inputs.__dict__,
                         "plan": first.to_json()}  # fmt: skip
        yield self._log(
            f"measured: RTT {rtt.rtt_s * 1e3:.1f} ms, {bandwidth * 8 / 1e6:.0f} Mbit/s "
            f"over {link.stripes} stripe{'s' if link.stripes > 1 else ''}, "
            f"dirty {dirty.bytes_per_s / 2**20:.2f} MiB/s ({dirty.method}), "
            f"state {size / 2**20:.0f} MiB; plan: {first.reason}"
        )

        done: list[model.MeasuredRound] = []
        current = first
        brownouts: list[float] = []
        sent_total = 0
        ran_prev = 0.0
        # Raw per-round measurements, kept in the record for calibration (`whimbrel bench`).
        measured: list[dict[str, Any]] = []
        self._record["measured_rounds"] = measured
        yield self._phase(Phase.PRECOPY) if mode == "iterative" else self._log("stop-and-copy")
        rounds_from = self._t()
        index = 0
        going = mode == "iterative" and round_cap(request) > 0
        # One agent on the source runs the rounds over sessions it keeps open, and arms the
        # hand-over (its sessions open, the receiver ready) while they run; told to, it fires
        # it. It stays until the migration ends.
        cfg = {"docker_socket": src.docker_socket, "keep_source": request.keep_source}
        agent = await stack.enter_async_context(src_session.conversation(
            "source.py", ["agent", self.id, container.id, link_json(link), json.dumps(cfg)],
            what="agent",
        ))  # fmt: skip
        while going:
            if self._aborted.is_set():
                raise MigrationFailed("aborted by the operator before the final round", src.name)
            forecast = current.per_round[0]
            yield self._emit(
                RoundStarted(index, False, forecast.bytes, forecast.seconds, self._t())
            )
            started = time.monotonic()
            result = await agent.ask(f"round {index}", timeout=3600)
            seconds = time.monotonic() - started
            sent_total += result["sent_bytes"]
            brownouts.append(result["freeze_s"])
            ran_s = max(seconds - result["freeze_s"], 1e-3)
            throughput = result["sent_bytes"] / max(result["send_s"], 1e-3)
            # A round costs more than its bytes over the link: hashing and rebuilding the
            # whole state on each side. What a round after round 0 took beyond its transfer
            # and round trips is the fixed work the model re-plans with. Round 0 is no sample
            # of it: it also opens the sessions (and arms the hand-over) and hashes every page
            # for the first time; taken as every round's cost, it made the model stop
            # iterating where the later, far cheaper rounds still converge.
            if index > 0:
                overhead_s = (
                    ran_s - result["sent_bytes"] / inputs.bandwidth - inputs.round_trips * rtt.rtt_s
                )
                inputs = replace(inputs, round_overhead=max(0.0, overhead_s))
            # What this round sent beyond round 0 is what the container dirtied since the
            # previous dump: the measured dirty rate.
            dirty_rate = (
                inputs.dirty_rate if index == 0 else result["sent_bytes"] / max(ran_prev, 1e-3)
            )
            ran_prev = ran_s
            done.append(
                model.MeasuredRound(
                    bytes=result["sent_bytes"],
                    seconds=ran_s,
                    dirty_rate=dirty_rate,
                    # Small rounds cannot fill the link: the model's B (the probed rate less
                    # the stream's own per-byte work, from the costs) is what a round gets.
                    throughput=inputs.bandwidth,
                )
            )
            inputs = replace(inputs, size=result["state_bytes"])
            current = model.replan(inputs, done, request.policy)
            measured.append({
                "bytes": result["sent_bytes"], "transfer_s": result["send_s"],
                "seconds": seconds, "throughput": bandwidth, "rtt": rtt.rtt_s, "final": False,
                "dump_s": result["freeze_s"], "dumped_bytes": result["state_bytes"],
                "stripes": result.get("stripes"),
            })  # fmt: skip
            remaining = current.rounds
            yield self._emit(
                RoundFinished(
                    index=index, final=False, planned_bytes=forecast.bytes,
                    sent_bytes=result["sent_bytes"], state_bytes=result["state_bytes"],
                    seconds=seconds, freeze_s=result["freeze_s"], dirty_rate=dirty_rate,
                    throughput=throughput,
                    link_utilisation=throughput / bandwidth if bandwidth else 0.0,
                    predicted_remaining_rounds=remaining,
                    predicted_downtime_s=current.downtime_s, t=self._t(),
                )
            )  # fmt: skip
            index += 1
            decision = after_round(request, inputs, done, current)
            current = decision.plan
            if decision.log:
                yield self._log(decision.log)
            going = not decision.stop

        if self._aborted.is_set():
            raise MigrationFailed("aborted by the operator before the final round", src.name)
        # From here the source node's daemon carries the hand-over to its end, with or
        # without us: the final phase starts when it does.
        self._record["handover"] = True
        write_record(self._record)
        # Until its end is known, nothing here may undo anything: see _follow.
        outcome.handover = "running"
        final_plan = current.per_round[-1]
        try:
            await agent.ask("handover", timeout=60)
        except NodeUnreachable as exc:  # fired or not, the daemon's log will say
            yield self._log(f"firing the hand-over: {exc}", "warning")
        yield self._phase(Phase.FINAL, "freeze, dump, send, restore (run by the source node)")
        yield self._emit(RoundStarted(index, True, final_plan.bytes, final_plan.seconds, self._t()))
        final: dict[str, Any] = {}
        async for event in self._follow(src_session, final):
            yield event
        if final.get("unsettled"):
            yield self._log(f"{final.get('error')}: settling from {dst.name}'s record", "warning")
            final = await self._settle_handover(src_session, dst, container.id, target_id, final)
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
        sent_total += final.get("sent_bytes", 0)
        # The migration proper (what the model's total time predicts) against the preflight.
        self._record["timing"] = {"preflight_s": rounds_from, "rounds_s": self._t() - rounds_from}
        self._record["last_plan"] = {"rounds": index, "downtime_s": current.downtime_s}
        if "downtime_s" in final:  # not when the commit's answer was lost: no clock saw it
            restore_s = final.get("restore_s") or 0.0
            measured.append({
                "bytes": final["sent_bytes"], "transfer_s": max(final["send_s"] - restore_s, 0.0),
                "seconds": final["downtime_s"], "throughput": bandwidth, "rtt": rtt.rtt_s,
                "final": True, "dump_s": final["dump_s"], "dumped_bytes": final["state_bytes"],
                "restore_s": restore_s, "stripes": final.get("stripes"),
            })  # fmt: skip
            yield self._emit(
                RoundFinished(
                    index=index, final=True, planned_bytes=final_plan.bytes,
                    sent_bytes=final["sent_bytes"], state_bytes=final["state_bytes"],
                    seconds=final["downtime_s"], freeze_s=final["downtime_s"],
                    dirty_rate=done[-1].dirty_rate if done else inputs.dirty_rate,
                    throughput=final["sent_bytes"] / max(final["send_s"], 1e-3),
                    link_utilisation=final["sent_bytes"] / max(final["send_s"], 1e-3) / bandwidth,
                    predicted_remaining_rounds=0, predicted_downtime_s=current.downtime_s,
                    t=self._t(),
                )
            )  # fmt: skip
        yield self._phase(Phase.CLEANUP)
        outcome.ok, outcome.running_on = True, dst.name
        outcome.delivered = Delivered(
            mode=mode,
            rounds=index,
            downtime_s=final.get("downtime_s"),
            predicted_downtime_s=first.downtime_s,
            predicted_total_time_s=first.total_time_s,
            predicted_bytes=first.bytes_sent,
            bytes_sent=sent_total,
            brownouts_s=tuple(brownouts),
            handover=final,
        )

    async def _follow(
        self, session: NodeSession, final: dict[str, Any]
    ) -> AsyncIterator[MigrationEvent]:
        """The hand-over as the source's daemon logs it, to its end (then in `final`). The
        daemon goes on without us, so a lost connection is made again and the log read on from
        where it was; only when the source stays out of reach for FOLLOW_GRACE_S does this
        give up, with the hand-over's end unknown (HandoverUnsettled)."""
        seen = 0
        lost_since: float | None = None
        while True:
            read, before = 0, seen
            try:
                lines = session.stream_python(
                    remote_script("source.py"), ["follow", self.id], timeout=3600
                )
                async with aclosing(lines):
                    async for line in lines:
                        read += 1
                        if read <= seen:  # read again after a lost connection
                            continue
                        seen = read
                        step = json.loads(line)
                        kind = step["kind"]
                        if kind == "sent":
                            yield self._phase(Phase.RESTORE, f"{step['sent_bytes']} bytes sent")
                        elif kind == "dumped":
                            yield self._log(f"dumped in {step['dump_s']:.2f} s: sending")
                        elif kind == "restored":
                            yield self._log("restored on the target, fenced: committing")
                        elif kind == "committed":
                            yield self._log("committed: the target serves, the source goes")
                        elif kind in ("failed", "warning"):
                            yield self._log(step.get("error") or step.get("text", ""), "error")
                        elif kind == "end":
                            final |= step
                            return
                lost = "the log ended before the hand-over did"
            except (NodeUnreachable, CommandFailed) as exc:
                lost = str(exc)
            now = time.monotonic()
            lost_since = now if lost_since is None or seen > before else lost_since
            if now - lost_since > FOLLOW_GRACE_S:
                raise HandoverUnsettled(session.node.name, lost)
            yield self._log(f"following the hand-over: {lost}; trying again", "warning")
            await asyncio.sleep(1.0)

    async def _release(self, src: NodeSession, cid: str, outcome: Outcome) -> None:
        if outcome.for_recover():
            return  # its daemon's outcome is in the work dir: `recover` needs it
        try:
            await source_action(src, "release", self.id, cid)
        except WhimbrelError as exc:
            outcome.cleanup_failed(f"release on {src.node.name}: {exc}")

    async def _settle_target(
        self, session: NodeSession, dst: Node, cid: str, outcome: Outcome
    ) -> None:
        """A migration that did not commit: the target records "aborted" (unless a verdict
        stands) and its container goes; a committed record is never undone."""
        if outcome.ok or outcome.unsettled():
            return  # it serves, or may be about to
        try:
            verdict = await target_action(session, "settle", self.id, dst.docker_socket, cid)
        except WhimbrelError as exc:
            outcome.warnings.append(f"target cleanup: {exc}")
            outcome.handover = "running"  # unknown: for `recover`, not for a guess
            return
        if verdict["decision"] == "committed":  # the daemon's outcome said otherwise
            outcome.warnings.append(
                f"{dst.name} recorded the commit: the container runs there; "
                "`whimbrel recover` settles the source"
            )
            outcome.handover, outcome.running_on = "running", dst.name

    async def _settle_handover(
        self, src: NodeSession, dst: Node, cid: str, target_id: str, final: dict[str, Any]
    ) -> dict[str, Any]:
        """A hand-over whose daemon could not learn the verdict (or died): the operator reaches
        both nodes even when they cannot reach each other, so it settles it now from the
        target's record (aborted unless committed), or leaves it unsettled for `recover`."""
        try:
            verdict = (
                await target_action(
                    self.pool.session(dst), "settle", self.id, dst.docker_socket, target_id
                )
            )["decision"]
            if verdict not in ("committed", "aborted"):
                return final
            settled = (await source_action(src, "settle", self.id, cid, verdict))["outcome"]
        except WhimbrelError as exc:
            return final | {"error": f"{final.get('error')}; settling it: {exc}"}
        said = "; ".join(filter(None, (final.get("error"), settled.get("error"))))
        return final | settled | {"unsettled": False, "error": said}

    async def _forget(self, session: NodeSession, outcome: Outcome) -> None:
        if outcome.for_recover():
            return  # the record is what `recover` settles from
        try:
            await target_action(session, "forget", self.id)
        except WhimbrelError as exc:
            outcome.cleanup_failed(f"target cleanup: {exc}")

    def _finish(self, outcome: Outcome) -> MigrationFinished:
        req, delivered = self.request, outcome.delivered
        event = MigrationFinished(
            ok=outcome.ok,
            container=self._record.get("container", req.container),
            src=self._record.get("src", "?"),
            dst=req.target,
            running_on=outcome.running_on,
            mode=delivered.mode if delivered else self._record.get("mode", req.mode),
            rounds=delivered.rounds if delivered else 0,
            downtime_s=delivered.downtime_s if delivered else None,
            predicted_downtime_s=delivered.predicted_downtime_s if delivered else None,
            total_time_s=self._t(),
            predicted_total_time_s=delivered.predicted_total_time_s if delivered else None,
            bytes_sent=delivered.bytes_sent if delivered else 0,
            predicted_bytes=delivered.predicted_bytes if delivered else None,
            brownouts_s=delivered.brownouts_s if delivered else (),
            error=outcome.error,
            t=self._t(),
        )
        pending_for = outcome.pending_for()
        self._record |= event_json(event) | {
            # What is left to settle stays pending, for `recover`.
            "status": "pending" if pending_for else "done" if event.ok else "failed",
            "pending_for": pending_for,
            "warnings": outcome.warnings,
            "handover_result": delivered.handover if delivered else None,
        }
        self._emit(event)
        self._record["events"] = self._events
        path = write_record(self._record)
        return replace(event, record=str(path))


async def _settle(task: asyncio.Task[Any]) -> None:
    """A side task the migration no longer waits for: cancelled, its outcome collected."""
    task.cancel()
    with suppress(asyncio.CancelledError, WhimbrelError, OSError):
        await task
