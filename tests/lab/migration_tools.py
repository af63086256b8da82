"""Running real migrations in tests: the `whimbrel migrate` command, and where containers run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.labtools import ssh

NODES = {"east-1": "198.18.1.10", "east-2": "198.18.1.11", "west-1": "198.18.2.10",
         "west-2": "198.18.2.11"}  # fmt: skip


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
    CRIU's network lock, helper processes."""
    address = NODES[node]
    found = []
    keys = ssh(address, f"cat /var/lib/wblab/nodes/{node}/authorized_keys 2>/dev/null; true")
    if "whimbrel-ephemeral" in keys:
        found.append("ephemeral key")
    # The node's TMPDIR (the lab gives each node its own): where links keep their files.
    tmp = ssh(address, f"ls /var/lib/wblab/nodes/{node}/tmp 2>/dev/null; true")
    found += [f"temp {t}" for t in tmp.split() if t.startswith("whimbrel-")]
    locks = ssh(address, "ls /run/whimbrel-locks 2>/dev/null; true").split()
    found += [f"lock {lock}" for lock in locks]
    rules = ssh(address, "iptables -S 2>/dev/null; nft list ruleset 2>/dev/null; true")
    if "CRIU" in rules:
        found.append("CRIU network lock")
    return found + _helper_processes()


# The lab's nodes share this machine's process table. What runs whimbrel's node helpers (the
# source's agent and hand-over daemon, the receiver, the link's ssh connections) carries one of
# these in its command line.
HELPER_MARKS = ("whimbrel node helper", "receiver.py", "/whimbrel-key-")


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
