"""Is a node ready for migrations? Every check, with what it found and, for a failure, the
remedy in one line: `whimbrel doctor` prints them, migrate refuses a node that fails one that
is required (quoting it), the console marks each node's readiness.

The operator's side checks what only it can see (SSH: reachable, host key known; the Docker
socket reached through the connection); the node helper remote/doctor.py checks the rest on
the node (privileges, the engine, runc, CRIU and its features, cgroups, free space, the
authorized_keys file, and whether the node reaches the nodes it would send rounds to).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from whimbrel.backends.config import Node
from whimbrel.backends.docker_engine import docker_engine
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.ssh import HostKeyRefused, NodeUnreachable, SessionPool, SudoRefused

DOCTOR_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str | None = None
    required: bool = True

    @property
    def line(self) -> str:
        """The check in one line: what was found and, failed, what to do."""
        return f"{self.name}: {self.detail}" + (f" ({self.remedy})" if self.remedy else "")

    @property
    def mark(self) -> str:
        """ok, FAIL (a required check) or warn: the CLI's and the console's word for it."""
        return "ok" if self.ok else "FAIL" if self.required else "warn"


@dataclass(frozen=True)
class NodeReport:
    node: str
    cluster: str
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    @property
    def failed(self) -> tuple[Check, ...]:
        """The required checks that failed."""
        return tuple(c for c in self.checks if c.required and not c.ok)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.required and not c.ok)

    @property
    def verdict(self) -> str:
        return "ready" if self.ready else f"NOT READY ({len(self.failed)} to fix)"

    def as_json(self) -> dict:
        return {
            "node": self.node,
            "cluster": self.cluster,
            "ready": self.ready,
            "checks": [asdict(c) for c in self.checks],
        }


class NodeNotReady(WhimbrelError):
    """A node failed a required check; the message quotes the doctor's first failed line."""

    def __init__(self, report: NodeReport) -> None:
        first = report.failed[0]
        more = len(report.failed) - 1
        also = f" (and {more} more)" if more else ""
        super().__init__(
            f"{report.node} is not ready for migrations: {first.line}{also}; "
            f"see `whimbrel doctor {report.node}`"
        )
        self.report = report


def peers_of(node: Node, nodes: Iterable[Node]) -> list[Node]:
    """The nodes `node` could send rounds to: those of every other cluster."""
    return [n for n in nodes if n.cluster != node.cluster]


async def _ssh(pool: SessionPool, node: Node) -> Check:
    try:
        await pool.session(node).connection()
    except HostKeyRefused as exc:
        return Check("ssh", False, exc.reason, "check the key with the node's owner, then add it")
    except NodeUnreachable as exc:
        return Check(
            "ssh", False, exc.reason, f"check {node.address}, the network, and that sshd runs"
        )
    user = node.ssh_user or "the default user"
    return Check("ssh", True, f"{node.address} as {user}, host key verified")


async def _socket_forwarding(pool: SessionPool, node: Node) -> Check:
    try:
        async with docker_engine(pool.session(node), timeout=10) as engine:
            await engine.ping()
    except WhimbrelError as exc:
        return Check(
            "docker-forwarding",
            False,
            str(exc).removeprefix(f"{node.name}: "),
            "AllowStreamLocalForwarding yes in the node's sshd_config: the operator reaches "
            "Docker through the SSH connection",
        )
    return Check("docker-forwarding", True, f"{node.docker_socket} reached over SSH")


async def _on_node(pool: SessionPool, node: Node, peers: Sequence[Node]) -> list[Check]:
    wanted = [[p.name, p.wan_address or p.host, p.port] for p in peers]
    try:
        found = await pool.session(node).run_helper(
            "doctor.py",
            [node.docker_socket, node.authorized_keys, json.dumps(wanted)],
            what="doctor",
            timeout=DOCTOR_TIMEOUT_S,
        )
    except SudoRefused as exc:
        return [Check("privileges", False, exc.said, exc.remedy)]
    except WhimbrelError as exc:
        detail = str(exc).removeprefix(f"{node.name}: ")
        return [Check("helper", False, detail, "the node needs python3 (3.9 or newer) on PATH")]
    return [Check(**c) for c in found["checks"]]


async def examine(
    pool: SessionPool,
    node: Node,
    peers: Sequence[Node] | None = None,
    *,
    forwarding: bool = True,
) -> NodeReport:
    """Every check of one node; `peers`: the nodes whose reachability it must show (by
    default every node of the other clusters); `forwarding=False` leaves out the Docker
    socket's forwarding (for a caller that has just forwarded it)."""
    if peers is None:
        peers = peers_of(node, pool.config.nodes)
    ssh = await _ssh(pool, node)
    if not ssh.ok:  # nothing else can be asked
        return NodeReport(node.name, node.cluster, (ssh,))
    on_node = _on_node(pool, node, peers)
    if not forwarding:
        return NodeReport(node.name, node.cluster, (ssh, *await on_node))
    reached, found = await asyncio.gather(_socket_forwarding(pool, node), on_node)
    return NodeReport(node.name, node.cluster, (ssh, reached, *found))


async def examine_all(pool: SessionPool, nodes: Sequence[Node]) -> list[NodeReport]:
    return list(await asyncio.gather(*(examine(pool, n) for n in nodes)))


async def require_ready(pool: SessionPool, src: Node, dst: Node) -> None:
    """Refuse a migration from `src` to `dst` when either fails a required check; the
    source must reach the target, nothing else. Preflight has just reached both engines
    through their connections: the forwarding is not checked again."""
    reports = await asyncio.gather(
        examine(pool, src, [dst], forwarding=False), examine(pool, dst, [], forwarding=False)
    )
    for report in reports:
        if not report.ready:
            raise NodeNotReady(report)
