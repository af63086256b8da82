"""The lab's layout: which clusters and nodes, their names, addresses and paths. Pure values.

Addresses come from 198.18.0.0/15, the range set aside for network benchmarks:
- cluster c (from 1) has the LAN 198.18.c.0/24; the operator's host is 198.18.c.1 on the
  cluster's bridge, node j (from 0) is 198.18.c.(10+j);
- node j of cluster c is reached from other clusters at 198.19.c.(10+j), an address of the
  WAN relay, which forwards to its LAN address with the WAN's delay and bandwidth.
Nodes have routes to their own LAN and to 198.19.0.0/16 only, so another cluster can be
reached through the emulated WAN and no other way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from whimbrel.backends.errors import UsageError

LAB_DIR = Path("/var/lib/wblab")
RUN_DIR = Path("/run/wblab")
NETNS_PREFIX = "wb-"
LINK_PREFIX = "wb"  # every link the lab makes starts with this (bridges, veths)
WAN_BRIDGE = "wbwan"
WAN_NET = "198.19.0.0/16"
SSH_PORT = 22
DEFAULT_NODES = (("east", 2), ("west", 2))
# The lab's node reached as a normal user who becomes root with passwordless sudo (as many
# operators' nodes are): the first cluster's second node, through this user.
SUDO_USER = "wbop"
MAX_CLUSTERS = 200
MAX_NODES_PER_CLUSTER = 200

_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")


@dataclass(frozen=True)
class LabNode:
    name: str
    cluster: str
    index: int  # position among all nodes, for link names
    lan_address: str
    wan_address: str
    gateway: str
    sudo_user: str | None = None  # whimbrel logs in as this user and becomes root with sudo

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def host_veth(self) -> str:
        return f"{LINK_PREFIX}v{self.index}"

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.name

    @property
    def state_dir(self) -> Path:
        return LAB_DIR / "nodes" / self.name

    @property
    def docker_socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def authorized_keys(self) -> Path:
        """Where whimbrel adds a migration's short-lived key: the node's own file, or the
        sudo user's ~/.ssh/authorized_keys, as on a real node."""
        if self.sudo_user:
            return Path("/home") / self.sudo_user / ".ssh" / "authorized_keys"
        return self.state_dir / "authorized_keys"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"


@dataclass(frozen=True)
class LabCluster:
    name: str
    index: int  # from 1
    bridge: str
    subnet: str
    gateway: str
    nodes: tuple[LabNode, ...]


@dataclass(frozen=True)
class Topology:
    clusters: tuple[LabCluster, ...]

    @property
    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(n for c in self.clusters for n in c.nodes)

    def node(self, name: str) -> LabNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise UsageError(f"no lab node named {name!r}")


def parse_nodes_spec(spec: str) -> tuple[tuple[str, int], ...]:
    """`east=2,west=2` -> (("east", 2), ("west", 2))."""
    out: list[tuple[str, int]] = []
    for part in spec.split(","):
        name, sep, count = part.strip().partition("=")
        if not sep or not _CLUSTER_NAME.match(name) or not count.isdigit():
            raise UsageError(
                f"--nodes: cannot read {part.strip()!r}, expected CLUSTER=COUNT like east=2 "
                "(cluster names: lower-case letters and digits, at most 16)"
            )
        if not 1 <= int(count) <= MAX_NODES_PER_CLUSTER:
            raise UsageError(f"--nodes: {name} needs 1 to {MAX_NODES_PER_CLUSTER} nodes")
        if any(name == seen for seen, _ in out):
            raise UsageError(f"--nodes: cluster {name!r} named twice")
        out.append((name, int(count)))
    if not 1 <= len(out) <= MAX_CLUSTERS:
        raise UsageError(f"--nodes: 1 to {MAX_CLUSTERS} clusters")
    return tuple(out)


def build_topology(spec: tuple[tuple[str, int], ...] = DEFAULT_NODES) -> Topology:
    clusters = []
    index = 0
    for c, (cname, count) in enumerate(spec, start=1):
        gateway = f"198.18.{c}.1"
        nodes = []
        for j in range(count):
            nodes.append(
                LabNode(
                    name=f"{cname}-{j + 1}",
                    cluster=cname,
                    index=index,
                    lan_address=f"198.18.{c}.{10 + j}",
                    wan_address=f"198.19.{c}.{10 + j}",
                    gateway=gateway,
                    sudo_user=SUDO_USER if (c, j) == (1, 1) else None,
                )
            )
            index += 1
        clusters.append(
            LabCluster(
                name=cname,
                index=c,
                bridge=f"{LINK_PREFIX}br{c}",
                subnet=f"198.18.{c}.0/24",
                gateway=gateway,
                nodes=tuple(nodes),
            )
        )
    return Topology(tuple(clusters))
