"""Running real migrations in tests: the `whimbrel migrate` command, and where containers run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.labtools import ssh
from whimbrel.backends.lab import daemons, images
from whimbrel.backends.lab.images import MEMWRITER_IMAGE, REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.lab.workloads import (
    WriteLoad,
    load_redis,
    memwriter_status,
    missing_writes,
)

NODES = {"east-1": "198.18.1.10", "east-2": "198.18.1.11", "west-1": "198.18.2.10",
         "west-2": "198.18.2.11"}  # fmt: skip
EAST1, WEST1 = NODES["east-1"], NODES["west-1"]
# The Redis the fault tests move (tests/lab/conftest.py `redis`).
NAME, PORT = "fragile", 6390


def start_redis(node: str, name: str, port: int) -> None:
    """A Redis holding 60 MB, host-networked on `node`."""
    address = NODES[node]
    ssh(address, f"docker run -d --name {name} --network host {REDIS_IMAGE} "
                 f"redis-server {REDIS_CONF} --port {port}")  # fmt: skip
    wait_until(lambda: _answers(address, port), timeout=20)
    load_redis(address, port, 60_000, value_size=1000)


def start_memwriter(
    name: str, address: str, port: int, size: str = "96MiB", hot: str = "48MiB"
) -> None:
    """A memwriter dirtying 2 MiB/s of its hot set, host-networked on the node at `address`."""
    ssh(address, f"docker run -d --name {name} --network host {MEMWRITER_IMAGE} memwriter "
                 f"--size {size} --hot {hot} --rate 2MiB/s --port {port}")  # fmt: skip
    wait_until(lambda: _memwriter_answers(address, port), timeout=10)


def _memwriter_answers(address: str, port: int) -> bool:
    try:
        memwriter_status(address, port)
        return True
    except OSError:
        return False


def remove_everywhere(name: str) -> None:
    for address in NODES.values():
        ssh(address, f"docker rm -f {name} >/dev/null 2>&1; true")


def _answers(address: str, port: int) -> bool:
    try:
        load_redis(address, port, 1)
        return True
    except OSError:
        return False


def migrate(
    config: str, container: str, target: str, *extra: str, env: dict | None = None
) -> tuple[int, list[dict]]:
    """`whimbrel migrate --json`; returns the exit code and the events."""
    proc = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "migrate", container,
         "--to", target, "--yes", "--json", *extra],
        capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})},
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not events:
        raise AssertionError(f"migrate printed no events: {proc.stderr[-2000:]}")
    return proc.returncode, events


def migrate_process(
    config: str,
    *extra: str,
    env: dict | None = None,
    container: str = f"east-1/{NAME}",
    target: str = "west-1",
) -> subprocess.Popen[str]:
    """`whimbrel migrate --json`, running (the fault tests' Redis, east-1 to west-1)."""
    return subprocess.Popen(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "migrate",
         container, "--to", target, "--yes", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def whimbrel_cli(config: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`whimbrel COMMAND` on the lab's config, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, *command],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def next_whimbrel_run(config: str, *command: str) -> subprocess.CompletedProcess[str]:
    """The next whimbrel start (`ls`, or `command`), which settles what an earlier one left."""
    return whimbrel_cli(config, *(command or ("ls",)))


def daemon_logged(kind: str) -> Callable[[], bool]:
    """Has the source's hand-over daemon logged a step of this kind (read from the host: the
    lab's nodes share its file system)?"""

    def check() -> bool:
        for path in WORK_DIRS.glob("*/handover.jsonl"):
            try:
                if f'"kind": "{kind}"' in path.read_text():
                    return True
            except OSError:
                continue
        return False

    return check


def when(condition: Callable[[], bool], action: Callable[[], object]) -> threading.Thread:
    """Run `action` once `condition` holds (polled for up to two minutes), in a thread."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def events_of(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, list[dict]]:
    assert proc.stdout is not None and proc.stderr is not None
    events = [json.loads(line) for line in proc.stdout]
    code = proc.wait(timeout=timeout)
    assert events, proc.stderr.read()
    return code, events


def reached(events: list[dict]) -> str:
    """The last phase the migration reached before it failed."""
    phases = [e["phase"] for e in events if e["event"] == "PhaseChanged"]
    return [p for p in phases if p not in ("rollback", "failed", "cleanup", "done")][-1]


def drop_ssh_connections(netns: str) -> int:
    """Kill every SSH connection into the node (not its listening sshd): whimbrel's link to
    the node drops as it would when the network does."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    killed = 0
    for pid in pids.stdout.split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0]
            if title.startswith(b"sshd:") and b"[listener]" not in title:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed


@contextlib.contextmanager
def docker_root_on_tmpfs(node: str, size: str) -> Iterator[Path]:
    """The node's dockerd restarted on a tmpfs of `size` as its data root (with the Redis
    image), where a migration's state lands; put back after."""
    lab_node = build_topology().node(node)
    small = lab_node.state_dir / "docker-small"
    small.mkdir(exist_ok=True)
    daemons.stop_dockerd(lab_node)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711",
                        "whimbrel-test-disk", small], check=True)  # fmt: skip
        daemons.start_dockerd(lab_node, data_root=small)
        images.import_image(lab_node.docker_host, images.redis_image())
        yield small
    finally:
        daemons.stop_dockerd(lab_node)
        subprocess.run(["umount", "--recursive", small], check=False)
        daemons.start_dockerd(lab_node)


def interrupted(
    config: str, signum: int, at: Callable[[dict], bool], *extra: str
) -> tuple[int, list[dict]]:
    """A migration sent `signum` at the first event `at` holds for."""
    proc = migrate_process(config, *extra)
    assert proc.stdout is not None
    events: list[dict] = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if at(events[-1]):
            proc.send_signal(signum)
            at = lambda event: False  # noqa: E731 (once)
    return proc.wait(timeout=120), events


def finished(events: list[dict]) -> dict:
    assert events[-1]["event"] == "MigrationFinished", events[-1]
    return events[-1]


def running_on(name: str) -> list[str]:
    """The nodes where a container of that name is running."""
    where = []
    for node, address in NODES.items():
        out = ssh(address, f"docker ps --filter name=^{name}$ --format '{{{{.Names}}}}'")
        if out.strip() == name:
            where.append(node)
    return where


def exists_on(node: str, name: str) -> bool:
    out = ssh(NODES[node], f"docker ps -a --filter name=^{name}$ --format '{{{{.Names}}}}'")
    return out.strip() == name


def wait_until(predicate, timeout: float, interval: float = 0.2) -> float:
    """Seconds it took for predicate() to hold; raises after timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def no_leftovers(node: str) -> list[str]:
    """Temporary things whimbrel could have left on a node: ephemeral keys, temp dirs, locks,
    work dirs, decision records, runc.conf edits, staged page files, CRIU's network lock,
    helper processes. Read from the host (the lab's nodes share its file system); a probe
    that cannot run fails the test instead of finding nothing."""
    found = []
    lab_node = build_topology().node(node)
    keys = lab_node.authorized_keys
    if keys.exists() and "whimbrel-ephemeral" in keys.read_text():
        found.append("ephemeral key")
    # The node's TMPDIR (the lab gives each node its own): where links keep their files;
    # sudo resets it, so a node reached through sudo keeps them in /tmp.
    for tmp in (lab_node.tmp_dir, *([Path("/tmp")] if lab_node.sudo_user else [])):
        found += [f"temp {t.name}" for t in tmp.iterdir() if t.name.startswith("whimbrel-")]
    for kind, where in (("lock", LOCKS), ("work dir", WORK_DIRS), ("decision", DECISIONS)):
        # (LOCKS/.guard: the empty file locks are taken under, kept so all lock one inode)
        found += [f"{kind} {p.name}" for p in where.glob("[!.]*")] if where.exists() else []
    if CRIU_CONF_SAVED.exists() or (
        CRIU_CONF.exists() and set(CRIU_CONF.read_text().split()) & OUR_CRIU_OPTIONS
    ):
        found.append("runc.conf edited")
    rules = _in_node(node, ["iptables", "-S"]) + _in_node(node, ["nft", "list", "ruleset"])
    if "CRIU" in rules:
        found.append("CRIU network lock")
    found += [f"staged pages in {name}" for name in _staging_containers(node)]
    return found + _helper_processes()


LOCKS = Path("/run/whimbrel-locks")
WORK_DIRS = Path("/var/tmp/whimbrel")
DECISIONS = Path("/var/lib/whimbrel/decisions")
CRIU_CONF = Path("/etc/criu/runc.conf")
CRIU_CONF_SAVED = Path("/etc/criu/runc.conf.whimbrel-saved")
# What a whimbrel restore or dump writes there, for its own block only.
OUR_CRIU_OPTIONS = {"leave-stopped", "tcp-close", "skip-in-flight", "lazy-pages", "work-dir"}


def _in_node(node: str, argv: list[str]) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", f"wb-{node}", *argv], capture_output=True, text=True, check=True
    ).stdout


def _docker(node: str, *args: str) -> str:
    return docker(build_topology().node(node).docker_host, *args).stdout.decode()


def _staging_containers(node: str) -> list[str]:
    """Running containers of the node whose root file system still holds /.wb."""
    staged = []
    for line in _docker(node, "ps", "--format", "{{.Names}}").split():
        pid = _docker(node, "inspect", "-f", "{{.State.Pid}}", line).strip()
        if Path(f"/proc/{pid}/root/.wb").exists():
            staged.append(line)
    return staged


# The lab's nodes share this machine's process table. What runs whimbrel's node helpers (the
# source's agent and hand-over daemon, the receiver, the link's ssh connections) carries one of
# these in its command line (and a lazy restore's `criu lazy-pages`, its name).
HELPER_MARKS = ("whimbrel node helper", "receiver.py", "/whimbrel-key-", "lazy-pages")


def _helper_processes(grace_s: float = 5.0) -> list[str]:
    """Helper processes still running after `grace_s` (the last ones end a round trip after
    the migration's outcome)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(mark in arg for arg in argv for mark in HELPER_MARKS):
                found.append(f"process {pid}: {' '.join(argv)[:80]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def state_on(node: str, name: str) -> str:
    """Docker's state of the container `name` on `node` ("running", "paused", ...), or "" if
    there is none."""
    out = ssh(NODES[node], f"docker ps -a --filter name=^{name}$ --format '{{{{.State}}}}'")
    return out.strip()


def serving_on(name: str) -> list[str]:
    """The nodes where a container of that name runs unpaused, its process not stopped
    (Docker calls a container whose tasks CRIU left stopped "running")."""
    return [
        node
        for node in NODES
        if state_on(node, name) == "running" and process_state(node, name) not in ("T", "t")
    ]


def process_state(node: str, name: str) -> str:
    """The kernel's state letter of the container's main process (R, S, T for stopped...),
    read from the host: the lab's nodes share its process table."""
    pid = _docker(node, "inspect", "-f", "{{.State.Pid}}", name).strip()
    status = Path(f"/proc/{pid}/status").read_text()
    return re.search(r"^State:\s+(\S)", status, re.MULTILINE).group(1)  # type: ignore[union-attr]


TARGET_ONLY = "t:"  # the target-only client's keys


class Ledgers:
    """The two clients of every fault test, writing to the Redis being moved: one follows the
    container (the source, then the target once the source stops answering), one talks only
    to the target node, as a client of a re-pointed DNS name would. Each keeps a ledger of the
    writes it saw acknowledged."""

    def __init__(
        self, name: str = NAME, port: int = PORT, src: str = "east-1", dst: str = "west-1"
    ) -> None:
        self.name, self.port, self.src, self.dst = name, port, src, dst
        self.follower = WriteLoad([(NODES[src], port), (NODES[dst], port)], rate=200)
        self.target_only = WriteLoad([(NODES[dst], port)], rate=50, prefix=TARGET_ONLY)

    def __enter__(self) -> Ledgers:
        self.follower.__enter__()
        self.target_only.__enter__()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.follower.stop()
        self.target_only.stop()

    def assert_settled_on(self, node: str) -> None:
        """The container serves on `node` alone, with every write either client saw
        acknowledged, and nothing of the migration is left on either node."""
        self.stop()
        assert serving_on(self.name) == [node]
        assert [n for n in NODES if n != node and state_on(n, self.name)] == [], "a stray copy"
        address = NODES[node]
        assert missing_writes(address, self.port, self.follower.acked) == []
        assert missing_writes(address, self.port, self.target_only.acked, prefix=TARGET_ONLY) == []
        assert len(self.follower.acked) > 100
        assert no_leftovers(self.src) == [] and no_leftovers(self.dst) == []
