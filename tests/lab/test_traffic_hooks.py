"""Traffic follows the container: a real HAProxy (Debian's) in front of a Redis, re-pointed by
the shipped hook (scripts/hooks/haproxy.py) that the container's label names, while
`redis-benchmark` (a client nobody here wrote, a new connection per request) runs through it
during the migration across the WAN: it ends with no error, and its longest wait is reported
next to the engine's downtime. A before_freeze hook that fails rolls the migration back and the
abort hook points the proxy at the source again; a whimbrel killed at the commit leaves the
commit hook to the next run's recovery."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.migration_tools import (
    NODES,
    Ledgers,
    _answers,
    daemon_logged,
    exists_on,
    migrate,
    migrate_process,
    next_whimbrel_run,
    remove_everywhere,
    running_on,
    serving_on,
    wait_until,
    when,
)
from tests.labtools import ssh
from whimbrel.backends.lab.images import REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.workloads import load_redis

pytestmark = pytest.mark.lab

NAME, PORT, PROXY_PORT = "proxiedkv", 6394, 16394
HOOK = Path(__file__).resolve().parents[2] / "scripts" / "hooks" / "haproxy.py"
# HAProxy retries a connection it could not open, reading the server's address anew each
# time: the parked clients wait through the downtime (see scripts/hooks/haproxy.py).
HAPROXY_CFG = """\
global
    stats socket {socket} mode 600 level admin
defaults
    mode tcp
    timeout connect 200ms
    timeout client 60s
    timeout server 60s
    retries 150
    option redispatch 1
listen kv
    bind 127.0.0.1:{proxy_port}
    option nolinger
    server redis {address}:{port}
"""


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Path]:
    """HAProxy on the operator's host in front of the Redis on east-1; its admin socket."""
    admin = tmp_path / "admin.sock"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(socket=admin, proxy_port=PROXY_PORT, address=NODES["east-1"], port=PORT)
    )
    proc = subprocess.Popen(["haproxy", "-f", str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(admin.exists, timeout=10)
        yield admin
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def hooked_config(lab: dict, tmp_path: Path, proxy: Path) -> Iterator[str]:
    """The lab's config with the haproxy hook, and a Redis on east-1 whose label names it."""
    argv = [sys.executable, str(HOOK), "--socket", str(proxy), "--server", "kv/redis",
            "--port", str(PORT)]  # fmt: skip
    failing = [sys.executable, "-c", "import sys; sys.exit('the load balancer said no')"]
    config = tmp_path / "config.toml"
    config.write_text(
        Path(lab["config"]).read_text()
        + f"\n[hooks.haproxy]\nbefore_freeze = {argv}\ncommit = {argv}\nabort = {argv}\n"
        + f"\n[hooks.refuse]\nbefore_freeze = {failing}\n"
    )
    ssh(NODES["east-1"], f"docker run -d --name {NAME} --network host "
                         f"--label whimbrel.hooks=haproxy {REDIS_IMAGE} "
                         f"redis-server {REDIS_CONF} --port {PORT}")  # fmt: skip
    try:
        wait_until(lambda: _answers(NODES["east-1"], PORT), timeout=20)
        load_redis(NODES["east-1"], PORT, 20_000, value_size=1000)
        yield str(config)
    finally:
        remove_everywhere(NAME)


def redis_benchmark(requests: int) -> subprocess.Popen[str]:
    """SETs through the proxy, a new connection for each (-k 0): a client that must not see
    the move (a connection kept across it would be closed: its server's address changes)."""
    return subprocess.Popen(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(PROXY_PORT), "-k", "0", "-c", "2",
         "-n", str(requests), "-t", "set", "--csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def server_address(admin: Path) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(admin))
        sock.sendall(b"show servers state kv\n")
        said = sock.makefile().read()
    [row] = [line.split() for line in said.splitlines() if line.startswith("2 kv ")]
    return f"{row[4]}:{row[18]}"  # srv_addr, srv_port


def test_redis_benchmark_through_the_repointed_proxy_sees_no_error_while_kv_moves(
    hooked_config: str, proxy: Path
) -> None:
    bench = redis_benchmark(400_000)
    try:
        time.sleep(2)
        with Ledgers(NAME, PORT, "east-1", "west-1") as ledgers:
            code, events = migrate(hooked_config, f"east-1/{NAME}", "west-1")
            assert code == 0, events[-1].get("error")
            assert bench.poll() is None, "redis-benchmark ended before the migration did"
            ledgers.assert_settled_on("west-1")
        out, err = bench.communicate(timeout=300)
    finally:
        bench.kill()
    assert bench.returncode == 0, err[-500:]
    assert "Error" not in err, err[-500:]
    [row] = list(csv.DictReader(out.splitlines()))
    done = events[-1]
    runs = {(r["hook"], r["event"]): r for r in done["hooks"]}
    assert set(runs) == {("haproxy", "before_freeze"), ("haproxy", "commit")}
    assert all(r["error"] is None for r in runs.values())
    assert server_address(proxy) == f"{NODES['west-1']}:{PORT}"
    assert any("hooks inside the clients' downtime" in e.get("text", "") for e in events)
    stall_s = float(row["max_latency_ms"]) / 1e3
    print(
        f"redis-benchmark: {row['rps']} SET/s, no error, longest wait {stall_s:.3f} s; "
        f"engine downtime {done['downtime_s']:.3f} s; hooks before_freeze "
        f"{runs['haproxy', 'before_freeze']['seconds'] * 1e3:.0f} ms, commit "
        f"{runs['haproxy', 'commit']['seconds'] * 1e3:.0f} ms"
    )
    assert stall_s >= done["downtime_s"] * 0.5  # the benchmark did wait through the move


def test_a_failing_before_freeze_hook_rolls_back_and_the_abort_hook_points_back(
    hooked_config: str, proxy: Path
) -> None:
    # The source's cluster names haproxy (it parks the server), the target's refuse (it fails
    # before the freeze).
    config = Path(hooked_config)
    config.write_text(
        config.read_text()
        .replace("[clusters.east]", '[clusters.east]\nhooks = ["haproxy"]')
        .replace("[clusters.west]", '[clusters.west]\nhooks = ["refuse"]')
    )
    bench = redis_benchmark(400_000)
    try:
        with Ledgers(NAME, PORT, "east-1", "west-1") as ledgers:
            code, events = migrate(hooked_config, f"east-1/{NAME}", "west-1")
            assert bench.poll() is None, "redis-benchmark ended before the migration did"
            ledgers.assert_settled_on("east-1")
        _, err = bench.communicate(timeout=300)
    finally:
        bench.kill()
    assert code != 0
    done = events[-1]
    assert done["running_on"] == "east-1"
    assert "the load balancer said no" in done["error"]
    assert [(r["hook"], r["event"], r["error"] is None) for r in done["hooks"]] == [
        ("haproxy", "before_freeze", True),
        ("refuse", "before_freeze", False),
        ("haproxy", "abort", True),
    ]
    assert serving_on(NAME) == ["east-1"]
    assert server_address(proxy) == f"{NODES['east-1']}:{PORT}"
    assert bench.returncode == 0 and "Error" not in err, err[-500:]


def test_a_whimbrel_killed_at_the_commit_leaves_the_commit_hook_to_recover(
    hooked_config: str, proxy: Path
) -> None:
    proc = migrate_process(hooked_config, container=f"east-1/{NAME}", target="west-1")
    when(daemon_logged("committed"), proc.kill).join(timeout=150)
    proc.wait(timeout=30)
    # The source's daemon ends the hand-over on its own; the proxy stays parked meanwhile.
    wait_until(lambda: running_on(NAME) == ["west-1"] and not exists_on("east-1", NAME), timeout=60)
    recovered = next_whimbrel_run(hooked_config, "recover", "--json")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    [found] = json.loads(recovered.stdout)
    assert (found["settled"], found["running_on"]) == (True, "west-1"), found
    assert "hook haproxy (commit): done" in found["text"], found["text"]
    assert server_address(proxy) == f"{NODES['west-1']}:{PORT}"
