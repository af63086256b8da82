"""A deterministic Backend for the console's snapshot and behaviour tests: fixed clusters,
fixed samples, scripted migrations (an evacuation's through the real runner), no clock and no
network. The only fake in the project; the real flow is proven against the lab
(tests/lab/test_console_pilot.py, test_console_evacuation.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from whimbrel.app.history_records import HistoryRecord
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.planning import DirtyRate
from whimbrel.backends.config import Config, Node, parse_config
from whimbrel.backends.doctor import Check, NodeReport, peers_of
from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.evacuation import (
    Evacuation,
    EvacuationEvent,
    EvacuationFinished,
    EvacuationPlan,
    MoveStarted,
)
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundProgress,
    RoundStarted,
)
from whimbrel.backends.inventory import ContainerInfo, NodeInventory
from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.probes import RttResult, RttSample, ThroughputResult

T0 = 1_700_000_000.0  # every timestamp counts from here: snapshots never see a clock
MiB = 1024 * 1024

CONFIG_PATH = Path("/etc/whimbrel/config.toml")
# What each node's inventory says new work can get (MemAvailable): the targets' room.
MEMORY_AVAILABLE = {"east-1": 3 << 30, "east-2": 2 << 30, "west-1": 1 << 30, "west-2": 4 << 30}

# The hand-over of the scripted final round (205 KiB at 23 MB/s with the commit behind it,
# 41 ms RTT: the answer's way back is half of it), as the source's daemon measured it and as
# the model predicted it: the model has no freeze, diff, commit or resume of their own (its
# dump, send and restore terms hold them).
MEASURED_PARTS = DowntimeParts(0.003, 0.049, 0.004, 0.030, 0.031, 0.001, 0.004, 0.020)
PREDICTED_PARTS = DowntimeParts(0.0, 0.039, 0.0, 0.027, 0.032, 0.0, 0.0, 0.020)


# The doctor's checks of a node as the node helper words them (backends/remote/doctor.py):
# name, what it finds passed, what it finds failed, the remedy, required. `{address}` is the
# node's, or for a link check the peer's.
DOCTOR_CHECKS = (
    ("ssh", "{address} as root, host key verified", "no answer within 6 s",
     "check {address}, the network, and that sshd runs", True),
    ("docker-forwarding", "/var/run/docker.sock reached over SSH",
     "the forwarded socket was refused", "AllowStreamLocalForwarding yes in the node's "
     "sshd_config: the operator reaches Docker through the SSH connection", True),
    ("privileges", "root", "runs as uid 1000",
     "connect as root: checkpoint, restore and the container's files need it", True),
    ("docker", "Docker 20.10.24 (API 1.41)", "no engine answers on /var/run/docker.sock",
     "start dockerd, or set this node's docker_socket to the socket it listens on", True),
    ("experimental", "on", "off", 'add "experimental": true to /etc/docker/daemon.json and '
     "restart dockerd (restores use docker start --checkpoint)", True),
    ("runc", "runc version 1.1.5; state in /run/docker/runtime-runc/moby",
     "the default runtime is crun",
     'set "default-runtime": "runc" in /etc/docker/daemon.json: dumps go through runc', True),
    ("criu", "CRIU 4.2.1 at /usr/sbin/criu", "CRIU 3.17.1 at /usr/sbin/criu",
     "install CRIU 4.2 or newer (older ones cannot dump TCP sockets on new kernels)", True),
    ("criu-check", "Looks good.", "Error (criu/cr-check.c:1280): UFFD is not supported",
     "`/usr/sbin/criu check` fails: the kernel lacks what CRIU needs (see its output there)",
     True),
    ("lazy-pages", "userfaultfd: restores start before all pages are there",
     "no userfaultfd (Error: UFFD is not supported)",
     "a kernel with CONFIG_USERFAULTFD: without it every page is sent before the restore",
     False),
    ("soft-dirty", "soft-dirty: rounds dump only the pages written since",
     "no soft-dirty tracking: each round dumps all memory (changes found by hashing)",
     "a kernel with CONFIG_MEM_SOFT_DIRTY makes rounds cheaper", False),
    ("network-lock", "iptables (/usr/sbin/iptables-restore)", "no iptables-restore on PATH",
     "install iptables: CRIU locks the container's connections with it while it dumps", True),
    ("space:staging", "38.2 GiB free for /var/lib/whimbrel", "0.4 GiB free for /var/lib/whimbrel",
     "free space on the file system of /var/lib/whimbrel: rounds are staged there, as much "
     "as the container's memory", True),
    ("authorized-keys", "/root/.ssh/authorized_keys writable",
     "/root/.ssh/authorized_keys not writable", "make it writable by this user, or set the "
     "node's authorized_keys to the file its sshd reads", True),
)  # fmt: skip
LINK_CHECK = (
    "{address} answers", "{address}: timed out",
    "let this node reach {address} over TCP: rounds go node to node over SSH", True,
)  # fmt: skip


def fake_report(node: Node, peers: Collection[Node], failing: Collection[str] = ()) -> NodeReport:
    """What the doctor finds on `node`: every check passes but those named in `failing` (a
    `link:PEER` check for each of `peers`). A node without SSH fails that and nothing more."""
    rows = [*DOCTOR_CHECKS, *((f"link:{p.name}", *LINK_CHECK) for p in peers)]
    addresses = {f"link:{p.name}": f"{p.host}:{p.port}" for p in peers}
    checks = []
    for name, passed, failed, remedy, required in rows:
        address = addresses.get(name, node.address)
        ok = name not in failing
        found = (passed if ok else failed).format(address=address)
        checks.append(
            Check(name, ok, found, None if ok else remedy.format(address=address), required)
        )
        if name == "ssh" and not ok:
            break
    return NodeReport(node.name, node.cluster, tuple(checks))


def fake_config(console: dict | None = None, read_only_cluster: str | None = None) -> Config:
    clusters = {"east": {}, "west": {}}
    if read_only_cluster:
        clusters[read_only_cluster] = {"read_only": True}
    data = {
        "clusters": clusters,
        "nodes": [
            {"name": n, "cluster": n.split("-")[0], "address": f"198.18.{i // 2 + 1}.{10 + i % 2}"}
            for i, n in enumerate(("east-1", "east-2", "west-1", "west-2"))
        ],
    }
    if console:
        data["console"] = console
    return parse_config(data, CONFIG_PATH)


def _container(name: str, node: str, image: str, memory: int, state: str = "running"):
    return ContainerInfo(
        id=f"{name}0123456789abcdef",
        name=name,
        image=image,
        state=state,
        status="Up 3 hours" if state == "running" else "Exited (0) 2 hours ago",
        node=node,
        cluster=node.split("-")[0],
        memory_bytes=memory,
        pid=4242 if state == "running" else None,
    )


def default_containers() -> list[ContainerInfo]:
    return [
        _container("kv", "east-1", "whimbrel-lab/redis:7", 22 * MiB),
        _container("hot", "east-1", "whimbrel-lab/memwriter:1", 128 * MiB),
        _container("queue", "east-2", "rabbitmq:3.13", 96 * MiB),
        _container("batch", "east-2", "busybox:1.36", 0, state="exited"),
        _container("web", "west-1", "nginx:1.27", 9 * MiB),
    ]


class FakeMigration:
    """Scripted engine events. Held, it waits (after round 0, or halfway through it) until
    `release()` or `abort()`, so tests can act mid-migration; a rollback waits for the round's
    end, as the engine's does."""

    def __init__(
        self,
        backend: FakeBackend,
        order: MigrationOrder,
        hold: bool,
        fail: str | None,
        crash: str | None,
        mid_round: bool = False,
    ):
        self.backend = backend
        self.order = order
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        self.mid_round = mid_round
        self.aborted = False
        self.fail = fail
        self.crash = crash
        self.took: float | None = None  # seconds its events said it took, once it ended

    def release(self) -> None:
        self.gate.set()

    def abort(self) -> None:
        self.aborted = True
        self.gate.set()

    async def events(self) -> AsyncIterator[MigrationEvent]:
        last = 0.0
        try:
            async for event in self._script():
                last = event.t
                yield event
        finally:
            self.took = last
            self.backend.ended.append(self)

    async def _script(self) -> AsyncIterator[MigrationEvent]:
        c, dst = self.order.container, self.order.target
        yield PhaseChanged(Phase.PREFLIGHT, 0.0)
        if self.crash:  # the engine itself breaks: no MigrationFinished comes
            raise OSError(self.crash)
        yield LogLine(f"criu 4.2 on {c.node} and {dst}; image present on {dst}", 0.21)
        yield PhaseChanged(Phase.PRECOPY, 0.35, "2 rounds planned")
        yield RoundStarted(0, False, 22 * MiB, 0.92, 0.35)
        yield RoundProgress(0, 9 * MiB, 22 * MiB, 0.4, 24e6, 0.54, 0.8)
        if self.mid_round:
            await self.gate.wait()
        yield RoundFinished(
            0,
            False,
            22 * MiB,
            21 * MiB,
            22 * MiB,
            0.97,
            0.012,
            1.1 * MiB,
            24e6,
            0.96,
            1,
            0.118,
            1.32,
        )
        if not self.mid_round:
            await self.gate.wait()
        if self.aborted or self.fail:
            why = "aborted by the operator" if self.aborted else self.fail
            yield PhaseChanged(Phase.ROLLBACK, 1.4, why)
            yield LogLine(f"{c.name} resumed on {c.node}; target cleaned", 1.6, "warning")
            yield PhaseChanged(Phase.FAILED, 1.7)
            yield MigrationFinished(
                ok=False,
                container=c.ref,
                src=c.node,
                dst=dst,
                running_on=c.node,
                mode="iterative",
                rounds=1,
                downtime_s=None,
                predicted_downtime_s=0.118,
                total_time_s=1.7,
                predicted_total_time_s=1.46,
                bytes_sent=21 * MiB,
                predicted_bytes=23.4 * MiB,
                error=why,
                t=1.7,
            )
            return
        yield RoundStarted(1, False, 1.3 * MiB, 0.1, 1.32)
        yield RoundFinished(
            1,
            False,
            1.3 * MiB,
            1.5 * MiB,
            22 * MiB,
            0.11,
            0.010,
            1.2 * MiB,
            23e6,
            0.9,
            0,
            0.121,
            1.43,
        )
        yield PhaseChanged(Phase.FINAL, 1.43)
        yield RoundStarted(2, True, 0.15 * MiB, 0.118, 1.43)
        yield RoundFinished(
            2, True, 0.15 * MiB, 0.2 * MiB, 22 * MiB, 0.14, 0.14, 0.0, 23e6, 0.8, 0, 0.118, 1.57
        )
        yield PhaseChanged(Phase.RESTORE, 1.57)
        yield PhaseChanged(Phase.CLEANUP, 1.71)
        self.backend.move(c.name, dst)
        if self.backend.crash_in_cleanup:  # moved, then the engine breaks tidying up
            raise OSError(self.backend.crash_in_cleanup)
        yield PhaseChanged(Phase.DONE, 1.8)
        yield MigrationFinished(
            ok=True,
            container=c.ref,
            src=c.node,
            dst=dst,
            running_on=dst,
            mode="iterative",
            rounds=2,
            downtime_s=MEASURED_PARTS.total_s,
            predicted_downtime_s=PREDICTED_PARTS.total_s,
            total_time_s=1.8,
            predicted_total_time_s=1.46,
            bytes_sent=int(22.7 * MiB),
            predicted_bytes=23.4 * MiB,
            brownouts_s=(0.012, 0.010),
            downtime_parts=MEASURED_PARTS,
            predicted_downtime_parts=PREDICTED_PARTS,
            t=1.8,
        )


class FakeBackend:
    def __init__(
        self,
        config: Config | None = None,
        *,
        unreachable: tuple[str, ...] = ("west-2",),
        containers: list[ContainerInfo] | None = None,
        hold_migrations: bool = False,
        fail_migrations: str | None = None,
        crash_migrations: str | None = None,
        crash_in_cleanup: str | None = None,
        history: list[HistoryRecord] | None = None,
        hold_mid_round: bool = False,
        failing: Mapping[str, str] | None = None,
        memory_available: Mapping[str, int] | None = None,
        doctor_finds: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """`hold_mid_round`: held migrations wait halfway through round 0 (its progress
        shown), not after it; `failing`: container name -> the error its migration fails
        with (the others go through); `doctor_finds`: node -> the checks its doctor fails
        (every node is ready otherwise; an unreachable one fails SSH)."""
        self.config = config or fake_config()
        self.unreachable = set(unreachable)
        self.containers = containers if containers is not None else default_containers()
        self.hold = hold_migrations or hold_mid_round
        self.hold_mid_round = hold_mid_round
        self.fail = fail_migrations
        self.failing = dict(failing or {})
        self.crash = crash_migrations
        self.crash_in_cleanup = crash_in_cleanup
        self.memory = dict(MEMORY_AVAILABLE if memory_available is None else memory_available)
        self.records = history if history is not None else default_history()
        self.doctor_finds = dict(doctor_finds or {})
        self.examined: list[str] = []  # nodes the doctor was asked about, in order
        self.migrations: list[FakeMigration] = []
        self.ended: list[FakeMigration] = []  # in the order they ended
        self.evacuations: list[tuple[EvacuationPlan, MigrationRequest]] = []
        self.unsettled: list[str] = []
        self.inventory_calls = 0
        self.rtt_calls = 0
        self.probed: set[tuple[str, str]] = set()
        self.closed = False

    def move(self, name: str, node: str) -> None:
        self.containers = [
            replace(c, node=node, cluster=node.split("-")[0]) if c.name == name else c
            for c in self.containers
        ]

    async def inventories(self, node: str, every_s: float) -> AsyncIterator[NodeInventory]:
        while True:
            yield await self.node_inventory(node)
            await asyncio.sleep(every_s)

    async def node_inventory(self, node: str) -> NodeInventory:
        """One answer of the node's (subclasses make it slow, or change what it says)."""
        self.inventory_calls += 1
        cluster = self.config.node(node).cluster
        if node in self.unreachable:
            return NodeInventory(node, cluster, False, error="no answer within 6 s", elapsed_s=6.0)
        mine = tuple(c for c in self.containers if c.node == node)
        memory = self.memory.get(node)
        return NodeInventory(node, cluster, True, mine, elapsed_s=0.05, memory_available=memory)

    async def doctor(self, node: str) -> NodeReport:
        self.examined.append(node)
        failing = {"ssh"} if node in self.unreachable else self.doctor_finds.get(node, ())
        checked = self.config.node(node)
        return fake_report(checked, peers_of(checked, self.config.nodes), failing)

    async def rtt(self, src: str, dst: str) -> RttResult:
        self.rtt_calls += 1
        first = (src, dst) not in self.probed
        self.probed.add((src, dst))
        same = self.config.node(src).cluster == self.config.node(dst).cluster
        base = 0.0004 if same else 0.040
        # A path's first probe brings two minutes of history, so charts have a shape at once.
        count = 120 if first else 3
        samples = tuple(
            RttSample(T0 + i, base + 0.002 * ((i * 7) % 5) / 4 + (0.006 if i % 23 == 0 else 0))
            for i in range(count)
        )
        return RttResult(src, dst, base + 0.001, 0.0002, samples)

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult:
        return ThroughputResult(src, dst, T0, 32 * MiB, 1.38, rtt_s, 24.4e6)

    async def dirty(self, container: ContainerInfo, interval_s: float) -> AsyncIterator[DirtyRate]:
        rate = 4 * MiB if container.name == "hot" else 300 * 1024
        for i in range(90):
            wobble = 1 + 0.15 * (((i * 5) % 7) - 3) / 3
            yield DirtyRate(
                T0 + 30 + i,
                rate * wobble / 4096,
                rate * wobble,
                float(container.memory_bytes or MiB),
            )
        await asyncio.Event().wait()  # then nothing more: snapshots stay still

    def migrate(self, order: MigrationOrder) -> FakeMigration:
        fail = self.failing.get(order.container.name, self.fail)
        migration = FakeMigration(self, order, self.hold, fail, self.crash, self.hold_mid_round)
        self.migrations.append(migration)
        return migration

    def evacuate(self, plan: EvacuationPlan, template: MigrationRequest) -> FakeEvacuation:
        self.evacuations.append((plan, template))
        return FakeEvacuation(self, plan, template)

    def migration_for(self, pool: Any, request: MigrationRequest) -> FakeMigration:
        """An evacuation's move as a scripted migration (the runner hands it no pool)."""
        container = next(c for c in self.containers if c.ref == request.container)
        return self.migrate(
            MigrationOrder(
                container,
                request.target,
                request.downtime_target_s,
                lazy_restore=request.lazy_restore,
            )
        )

    def history(self) -> list[HistoryRecord]:
        return list(self.records)

    async def recover(self) -> list[str]:
        return list(self.unsettled)

    async def close(self) -> None:
        self.closed = True


class FakeEvacuation:
    """The real runner (backends/evacuation/run.py) over scripted migrations, its clock
    replaced by theirs: each migration takes the time its events say, and the next starts in
    the slot the earliest to end freed. Snapshots never see the wall clock."""

    def __init__(self, backend: FakeBackend, plan: EvacuationPlan, template: MigrationRequest):
        self.backend, self.plan = backend, plan
        self._runner = Evacuation(None, plan, template, migration=backend.migration_for)  # type: ignore[arg-type]
        self._started: dict[str, float] = {}
        self._ended_before = len(backend.ended)  # migrations of earlier runs

    def abort(self) -> None:
        self._runner.abort()

    async def events(self) -> AsyncIterator[EvacuationEvent]:
        async for item in self._runner.events():
            yield self._on_script(item)

    def _ends(self) -> list[tuple[float, str]]:
        """When each migration of this run that ended did, from the evacuation's start (one
        whose start is not read yet, not yet)."""
        return [
            (self._started[ref] + (m.took or 0.0), ref)
            for m in self.backend.ended[self._ended_before :]
            if (ref := m.order.container.ref) in self._started
        ]

    def _on_script(self, item: EvacuationEvent) -> EvacuationEvent:
        if isinstance(item, MoveStarted):
            # The runner starts the n-th past `concurrency` once n migrations ended.
            freed = len(self._started) - self.plan.concurrency
            t = sorted(self._ends())[freed][0] if freed >= 0 else 0.0
            self._started[item.ref] = t
            return replace(item, t=t)
        if isinstance(item, EvacuationFinished):
            ends = {ref: t for t, ref in self._ends()}
            results = tuple(
                replace(r, started_s=self._started[r.ref], ended_s=ends[r.ref])
                if r.started_s is not None
                else r
                for r in item.results
            )
            return replace(item, results=results, wall_s=max(ends.values(), default=0.0))
        return item


def default_history() -> list[HistoryRecord]:
    return [
        HistoryRecord(
            path="/var/lib/whimbrel/history/2.json",
            started_at=T0 + 3600,
            container="west-1/kv",
            src="west-1",
            dst="east-1",
            ok=True,
            status="done",
            running_on="east-1",
            mode="iterative",
            rounds=2,
            downtime_s=0.151,
            predicted_downtime_s=0.12,
            total_time_s=1.9,
            predicted_total_time_s=1.5,
            bytes_sent=int(23 * MiB),
            predicted_bytes=23.4 * MiB,
            brownouts_s=(0.012, 0.01),
        ),
        HistoryRecord(
            path="/var/lib/whimbrel/history/1.json",
            started_at=T0,
            container="east-1/hot",
            src="east-1",
            dst="west-2",
            ok=False,
            status="failed",
            running_on="east-1",
            mode="iterative",
            rounds=1,
            downtime_s=None,
            predicted_downtime_s=0.3,
            total_time_s=2.2,
            predicted_total_time_s=6.1,
            bytes_sent=int(120 * MiB),
            predicted_bytes=190 * MiB,
            error="west-2: connection lost",
        ),
    ]
