"""`whimbrel lab up|down|status|wan`: real clusters of nodes on one Linux machine.

Each node is a network namespace with its own sshd and its own dockerd (experimental, own data
and exec roots, CRIU >= 4.2 on its PATH); the nodes of a cluster share a bridge; clusters reach
each other only through the WAN relay (wan.py), which adds the set RTT and bandwidth cap.
Everything the lab makes is named from topology.py, so `down` finds it again even when the
processes that made it were killed, and `up` always starts from a clean slate.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from whimbrel.backends.errors import UsageError
from whimbrel.backends.lab import daemons, images, sudo_user
from whimbrel.backends.lab.criu_cache import drop_criu_record, keep_criu_record
from whimbrel.backends.lab.memory import (
    back_free_memory,
    hold_freed_memory,
    release_freed_memory,
)
from whimbrel.backends.lab.system import (
    LabError,
    docker,
    kill_and_wait,
    read_pid,
    run,
    spawn,
    wait_for,
)
from whimbrel.backends.lab.topology import (
    LAB_DIR,
    LINK_PREFIX,
    NETNS_PREFIX,
    RUN_DIR,
    SSH_PORT,
    SUDO_USER,
    WAN_BRIDGE,
    WAN_NET,
    LabNode,
    Topology,
    build_topology,
)
from whimbrel.backends.lab.workloads import load_redis

STATE_FILE = LAB_DIR / "state.json"
CONFIG_FILE = LAB_DIR / "config.toml"
SSH_DIR = LAB_DIR / "ssh"
SSH_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
WAN_PID = RUN_DIR / "wan.pid"
WAN_LOG = RUN_DIR / "wan.log"
REPORTING_SAVED = RUN_DIR / "page_reporting_order.saved"
KDAT_KEPT = RUN_DIR / "criu-kdat.kept"

DEFAULT_RTT_MS = 40.0
DEFAULT_BANDWIDTH_MBIT = 200.0
KV_KEYS = 100_000
HOT_ARGS = ("--size", "128MiB", "--hot", "64MiB", "--rate", "4MiB/s", "--port", "7070")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WanSettings:
    rtt_ms: float
    bandwidth_mbit: float

    def __post_init__(self) -> None:
        if not 0 <= self.rtt_ms <= 10_000:
            raise UsageError(f"--rtt: {self.rtt_ms} ms is outside 0 to 10 s")
        if not 0.1 <= self.bandwidth_mbit <= 100_000:
            raise UsageError(f"--bandwidth: {self.bandwidth_mbit} Mbit/s is outside 0.1 to 100000")


def require_root() -> None:
    if os.geteuid() != 0:
        raise UsageError("the lab needs root (network namespaces, dockerd, CRIU): run with sudo")


# ---------------------------------------------------------------- up


def up(topology: Topology, wan: WanSettings, progress: Progress) -> dict:
    require_root()
    started = time.monotonic()
    _check_prerequisites()
    down(progress, quiet=True)
    for d in (LAB_DIR, RUN_DIR, SSH_DIR, Path("/run/sshd")):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(LAB_DIR, 0o700)
    held = hold_freed_memory(REPORTING_SAVED)
    if held:
        progress(f"memory: {held}; {back_free_memory()}")
    if kept := keep_criu_record(KDAT_KEPT):
        progress(f"criu: {kept}")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "whimbrel-lab", "-f", SSH_KEY])
    for user in {n.sudo_user for n in topology.nodes if n.sudo_user}:
        progress(f"user: {user}, with passwordless sudo, for the nodes reached as a user")
        sudo_user.make(user, SSH_KEY.with_suffix(".pub").read_text())

    progress("network: namespaces, bridges, WAN addresses")
    _make_network(topology)
    _write_state(topology, wan)

    progress(f"nodes: sshd and dockerd on {len(topology.nodes)} nodes")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(daemons.start_node, topology.nodes))
        build = LAB_DIR / "build"
        build.mkdir(exist_ok=True)
        specs = [images.redis_image(), images.memwriter_image(build)]
        progress("images: " + ", ".join(s.tag for s in specs))
        list(
            pool.map(
                lambda args: images.import_image(*args),
                [(n.docker_host, s) for n in topology.nodes for s in specs],
            )
        )

    progress(f"wan: {wan.rtt_ms:g} ms RTT, {wan.bandwidth_mbit:g} Mbit/s between clusters")
    _start_wan()
    _write_ssh_files(topology)
    _write_config(topology)

    first = topology.nodes[0]
    progress(f"workloads: redis `kv` and memwriter `hot` on {first.name}")
    _start_samples(first)
    progress(f"lab up in {time.monotonic() - started:.1f} s")
    return status()


def _check_prerequisites() -> None:
    missing = [
        p
        for p in (
            "/usr/sbin/dockerd",
            "/usr/sbin/sshd",
            "/usr/bin/docker",
            "/usr/local/sbin/criu",
            str(images.BUSYBOX),
            str(images.REDIS_SERVER),
        )
        if not Path(p).exists()
    ]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run `make setup` as root first")


def _make_network(topology: Topology) -> None:
    run(["ip", "link", "add", WAN_BRIDGE, "type", "bridge"])
    run(["ip", "link", "set", WAN_BRIDGE, "up"])
    for cluster in topology.clusters:
        run(["ip", "link", "add", cluster.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{cluster.gateway}/24", "dev", cluster.bridge])
        run(["ip", "link", "set", cluster.bridge, "up"])
        for node in cluster.nodes:
            ns = node.netns
            peer = f"{LINK_PREFIX}p{node.index}"
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", node.host_veth, "type", "veth", "peer", "name", peer])
            run(["ip", "link", "set", node.host_veth, "master", cluster.bridge, "up"])
            run(["ip", "link", "set", peer, "netns", ns])
            run(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
            run(["ip", "-n", ns, "addr", "add", f"{node.lan_address}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "route", "add", WAN_NET, "via", node.gateway])
            run(["ip", "addr", "add", f"{node.wan_address}/32", "dev", WAN_BRIDGE])


def _write_state(topology: Topology, wan: WanSettings) -> None:
    state = {
        "nodes_spec": [[c.name, len(c.nodes)] for c in topology.clusters],
        "rtt_ms": wan.rtt_ms,
        "bandwidth_mbit": wan.bandwidth_mbit,
        "cluster_subnets": {c.name: c.subnet for c in topology.clusters},
        "wan_routes": [
            {
                "listen": n.wan_address,
                "port": SSH_PORT,
                "upstream": n.lan_address,
                "cluster": n.cluster,
            }
            for n in topology.nodes
        ],
    }
    _save_state(state)


def _save_state(state: dict) -> None:
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(STATE_FILE)  # atomic: the relay may re-read it at any moment


def _read_state() -> dict | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _start_wan() -> None:
    proc = spawn([sys.executable, "-m", "whimbrel.backends.lab.wan", STATE_FILE], log=WAN_LOG)
    WAN_PID.write_text(f"{proc.pid}\n")
    state = _read_state() or {}
    first = state["wan_routes"][0]
    wait_for(
        lambda: _tcp_open(first["listen"], first["port"]) or proc.poll() is not None,
        "WAN relay",
        timeout=15,
    )
    if proc.poll() is not None:
        raise LabError(f"WAN relay exited at start: see {WAN_LOG}")


def cut_wan() -> None:
    """Partition the clusters (for fault tests): the relay killed, so every connection across
    the WAN drops and none is made until heal_wan(). The operator still reaches every node."""
    pid = read_pid(WAN_PID)
    if pid is None:
        raise LabError("the WAN relay is not running")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    first = (_read_state() or {})["wan_routes"][0]
    wait_for(lambda: not _tcp_open(first["listen"], first["port"]), "the WAN cut", timeout=10)


def heal_wan() -> None:
    """End a partition made by cut_wan()."""
    _start_wan()


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_ssh_files(topology: Topology) -> None:
    (LAB_DIR / "authorized_keys").write_text(SSH_KEY.with_suffix(".pub").read_text())
    lines = []
    for node in topology.nodes:
        pub = (node.state_dir / "ssh_host_ed25519_key.pub").read_text().split()
        lines.append(f"{node.lan_address},{node.wan_address} {pub[0]} {pub[1]}")
    KNOWN_HOSTS.write_text("\n".join(lines) + "\n")


def _write_config(topology: Topology) -> None:
    q = json.dumps  # a TOML basic string is a JSON string for these values
    out = [
        "# whimbrel config for the local lab, written by `whimbrel lab up`.",
        "[ssh]",
        f"known_hosts = {q(str(KNOWN_HOSTS))}",
        'connect_timeout = "3s"',
        "",
    ]
    for cluster in topology.clusters:
        out += [f"[clusters.{cluster.name}]", ""]
    # Nodes reach each other only through the WAN relay, which connects to the target from this
    # machine's address on the target's cluster bridge (its gateway): the relay hides the
    # source, so every node's peers see it come from the gateways (as the operator does).
    link_from = ",".join(c.gateway for c in topology.clusters)
    for node in topology.nodes:
        out += [
            "[[nodes]]",
            f"name = {q(node.name)}",
            f"cluster = {q(node.cluster)}",
            f"address = {q(node.lan_address)}",
            f"wan_address = {q(node.wan_address)}",
            *(
                [f"ssh_user = {q(node.sudo_user)}", 'become = "sudo"']
                if node.sudo_user
                else ['ssh_user = "root"']
            ),
            f"identity_file = {q(str(SSH_KEY))}",
            f"docker_socket = {q(str(node.docker_socket))}",
            # The sudo user's own ~/.ssh/authorized_keys, named as an operator would.
            "authorized_keys = "
            + q("~/.ssh/authorized_keys" if node.sudo_user else str(node.authorized_keys)),
            f"link_from = {q(link_from)}",
            "",
        ]
    CONFIG_FILE.write_text("\n".join(out))


def _start_samples(node: LabNode) -> None:
    sample = ("run", "-d", "--network", "host")
    docker(node.docker_host, *sample, "--name", "kv", images.REDIS_IMAGE)
    docker(
        node.docker_host, *sample, "--name", "hot", images.MEMWRITER_IMAGE, "memwriter", *HOT_ARGS
    )
    wait_for(lambda: _tcp_open(node.lan_address, 6379), "redis `kv`", timeout=15)
    load_redis(node.lan_address, 6379, KV_KEYS)
    wait_for(lambda: _tcp_open(node.lan_address, 7070), "memwriter `hot`", timeout=15)


# ---------------------------------------------------------------- down


def down(progress: Progress, quiet: bool = False) -> None:
    """Remove every process, mount, namespace, link and file of the lab. Safe to repeat."""
    require_root()
    namespaces = [
        line.split()[0]
        for line in run(["ip", "netns", "list"]).stdout.decode().splitlines()
        if line.startswith(NETNS_PREFIX)
    ]
    if not quiet or namespaces:
        progress(f"down: {len(namespaces)} namespaces")
    pids: set[int] = set()
    wan = read_pid(WAN_PID)
    if wan:
        pids.add(wan)
    pids |= _pids_running(f"whimbrel.backends.lab.wan {STATE_FILE}")
    for ns in namespaces:
        out = run(["ip", "netns", "pids", ns], check=False).stdout.decode()
        pids |= {int(p) for p in out.split()}
    kill_and_wait(pids)
    _unmount_under((LAB_DIR, RUN_DIR))
    for ns in namespaces:
        run(["ip", "netns", "delete", ns])
    links = run(["ip", "-o", "link", "show"]).stdout.decode()
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(LINK_PREFIX):
            run(["ip", "link", "delete", name], check=False)
    release_freed_memory(REPORTING_SAVED)
    drop_criu_record(KDAT_KEPT)
    sudo_user.remove(SUDO_USER)
    for d in (RUN_DIR, LAB_DIR):
        if d.exists():
            run(["rm", "-rf", "--one-file-system", d])


def _pids_running(cmdline_fragment: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline_fragment in cmd and int(entry.name) != os.getpid():
            found.add(int(entry.name))
    return found


def lab_mounts(roots: tuple[Path, ...] = (LAB_DIR, RUN_DIR)) -> list[str]:
    """Mount points under the lab's directories, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount_under(roots: tuple[Path, ...]) -> None:
    for point in lab_mounts(roots):
        run(["umount", "-l", point], check=False)


# ---------------------------------------------------------------- status and wan


def _ssh_banner(host: str, port: int = SSH_PORT, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def status() -> dict:
    """The lab as `lab status --json` prints it; `{"up": false}` when there is none."""
    state = _read_state()
    if state is None:
        return {"up": False}
    topology = build_topology(tuple((c, n) for c, n in state["nodes_spec"]))
    wan_pid = read_pid(WAN_PID)
    return {
        "up": True,
        "config": str(CONFIG_FILE),
        "ssh_key": str(SSH_KEY),
        "known_hosts": str(KNOWN_HOSTS),
        "rtt_ms": state["rtt_ms"],
        "bandwidth_mbit": state["bandwidth_mbit"],
        "wan_relay_running": bool(wan_pid and Path(f"/proc/{wan_pid}").exists()),
        "nodes": [
            {
                "name": n.name,
                "cluster": n.cluster,
                "netns": n.netns,
                "address": n.lan_address,
                "wan_address": n.wan_address,
                "docker_socket": str(n.docker_socket),
                "reachable": _ssh_banner(n.lan_address),
            }
            for n in topology.nodes
        ],
    }


def set_wan(rtt_ms: float | None, bandwidth_mbit: float | None) -> dict:
    """Change the WAN of a running lab; new values apply to data from now on."""
    require_root()
    state = _read_state()
    if state is None:
        raise UsageError("no lab is up (run `whimbrel lab up`)")
    wan = WanSettings(
        state["rtt_ms"] if rtt_ms is None else rtt_ms,
        state["bandwidth_mbit"] if bandwidth_mbit is None else bandwidth_mbit,
    )
    state["rtt_ms"], state["bandwidth_mbit"] = wan.rtt_ms, wan.bandwidth_mbit
    _save_state(state)
    pid = read_pid(WAN_PID)
    if pid is None:
        raise LabError("the WAN relay is not running: run `whimbrel lab up` again")
    os.kill(pid, 1)  # SIGHUP: re-read the state file
    return {"rtt_ms": wan.rtt_ms, "bandwidth_mbit": wan.bandwidth_mbit}
