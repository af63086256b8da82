"""Node-to-node links: SSH from a source node straight to a target node, with no standing trust.

For one migration (or probe) whimbrel makes a fresh key pair in memory and installs:
- on the target, one authorized_keys line for the public key, restricted (no pty, no
  forwarding), forced to run the receiver script (remote/receiver.py) in a private temp dir,
  and carrying an `expiry-time`, so it dies by itself even if whimbrel is killed, and, when
  the source's config names the addresses it connects from (`link_from`), a `from=`;
- on the source, the private key (sent on stdin, never in argv or logs), a known_hosts
  line holding the target's host key exactly as the operator's verified connection saw it,
  and the ssh config the link's ssh reads (`-F`) instead of the node user's ~/.ssh/config and
  /etc/ssh/ssh_config, so that no config on the node can weaken its host key check.
Both are removed when the link closes. The data then goes source -> target over SSH across
the WAN, never through the operator's machine.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncssh

from whimbrel.backends.config import DEFAULT_SSH_PORT, Node
from whimbrel.backends.ssh import NodeSession, SessionPool, remote_script

LINK_TTL_MINUTES = 120


# OpenSSH's channel window (2 MiB, fixed) bounds what one stream has in flight: dealt 1 MiB
# frames in turn, a stripe carries about STRIPE_BYTES_PER_RTT a round trip (measured on the lab
# at 50-200 ms: 1.17-1.4 MB), 48 Mbit/s at 200 ms whatever the link. Rounds go over enough
# stripes, each its own connection, that the window is not what limits a path of up to
# STRIPE_TARGET_BPS (a stripe per 21 ms of round trip: at 200 ms a probe over 10 carried 98%
# of 400 Mbit/s, over 6 76%). The source opens them 8 at a time (transfer.py), under sshd's
# MaxStartups.
STRIPE_BYTES_PER_RTT = 1.2e6
STRIPE_TARGET_BPS = 57e6
MAX_STRIPES = 12


def stripes_for(rtt_s: float) -> int:
    """How many stripes a path with this round trip needs: 1 up to 21 ms, 5 at 100 ms."""
    needed = rtt_s * STRIPE_TARGET_BPS / STRIPE_BYTES_PER_RTT
    return max(1, min(MAX_STRIPES, math.ceil(needed)))


@dataclass(frozen=True)
class NodeLink:
    """An open link: `argvs()` is what the source runs to reach the receiver, a command line
    per stripe."""

    id: str
    src: Node
    dst: Node
    src_dir: str  # on the source: the private key, known_hosts and ssh_config
    dst_dir: str  # on the target: the receiver script
    user: str
    stripes: int = 1

    def ssh_base(self, stripe: int = 0) -> list[str]:
        """The ssh command line on the source for one stripe, less the receiver action to ask
        for. Each stripe keeps its own master connection across rounds, so a round costs one
        round trip to start, not a handshake. The forced command runs the receiver whatever
        is asked; the receiver reads the action from SSH_ORIGINAL_COMMAND."""
        master = "master" if stripe == 0 else f"master-{stripe}"
        return [
            "ssh",
            "-T",
            "-F", f"{self.src_dir}/ssh_config",
            "-i", f"{self.src_dir}/id",
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.src_dir}/known_hosts",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self.src_dir}/{master}",
            "-o", "ControlPersist=300",
            "-p", str(self.dst.port),
            f"{self.user}@{self.dst.wan_address}",
        ]  # fmt: skip

    def argvs(self) -> list[list[str]]:
        return [self.ssh_base(i) for i in range(self.stripes)]

    def for_rtt(self, rtt_s: float) -> NodeLink:
        return replace(self, stripes=stripes_for(rtt_s))


def _known_hosts_line(node: Node, key: asyncssh.SSHKey) -> str:
    host = node.wan_address
    if node.port != DEFAULT_SSH_PORT or ":" in host:
        host = f"[{host}]:{node.port}"
    return f"{host} {key.export_public_key('openssh').decode().strip()}"


async def _trust(session: NodeSession, *args: str, input: bytes | None = None) -> dict:
    return await session.run_helper("trust.py", args, what=f"trust {args[0]}", input=input)


@asynccontextmanager
async def open_link(
    pool: SessionPool,
    src: Node,
    dst: Node,
    keep: Callable[[], bool] = lambda: False,
    ttl_minutes: int = LINK_TTL_MINUTES,
    revoked: Callable[[dict[str, Any]], None] = lambda _: None,
) -> AsyncIterator[NodeLink]:
    """A link for the block's length. If `keep()` says so at the end (a hand-over still running
    on it, its end unknown), the link stays, for whoever settles the hand-over to revoke; its
    key expires by itself in any case. `revoked` gets what the target said as it went (a lazy
    restore's fill, which its going waits for)."""
    src_session, dst_session = pool.session(src), pool.session(dst)
    dst_conn = await dst_session.connection()
    host_key = dst_conn.get_server_host_key()
    if host_key is None:  # pragma: no cover - asyncssh always has it after a verified login
        raise RuntimeError(f"{dst.name}: no verified host key")
    user = dst.ssh_user or dst_conn.get_extra_info("username")
    ident = secrets.token_hex(6)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"whimbrel-{ident}")
    public = key.export_public_key("openssh").decode().split()
    receiver = base64.b64encode(remote_script("receiver.py").encode()).decode()

    granted = await _trust(
        dst_session,
        "grant",
        dst.authorized_keys,
        ident,
        str(ttl_minutes),
        f"{public[0]} {public[1]}",
        receiver,
        *([src.link_from] if src.link_from else []),
    )
    src_dir = None
    try:
        made = await _trust(
            src_session,
            "keyfile",
            _known_hosts_line(dst, host_key),
            input=key.export_private_key("openssh"),
        )
        src_dir = made["dir"]
        yield NodeLink(ident, src, dst, src_dir, granted["dir"], user)
    finally:
        if not keep():
            revoked(await revoke_link(pool, src, dst, ident, src_dir, granted["dir"]))


async def revoke_link(
    pool: SessionPool, src: Node, dst: Node, ident: str, src_dir: str | None, dst_dir: str
) -> dict[str, Any]:
    """Remove the link's key line and receiver dir on the target, its key dir on the source;
    returns what the target said."""
    said = await _trust(pool.session(dst), "revoke", dst.authorized_keys, ident, dst_dir)
    if src_dir is not None:
        await _trust(pool.session(src), "cleanup", src_dir)
    return said
