"""Backends against the real lab: inventory across clusters, unreachable and wrong-keyed nodes,
and the probes of the path a migration takes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

from tests.labtools import ssh
from whimbrel.backends.channel import stripes_for
from whimbrel.backends.config import load_config
from whimbrel.backends.inventory import NodeInventory, watch_inventory
from whimbrel.backends.lab import daemons
from whimbrel.backends.lab import lab as lab_module
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.ssh import SessionPool

pytestmark = pytest.mark.lab


def whimbrel(*args: str, config: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ls_json(config: str, *extra: str) -> dict:
    done = whimbrel("ls", "--json", *extra, config=config)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def test_ls_lists_every_container_with_its_node_and_cluster(lab: dict) -> None:
    result = ls_json(lab["config"])
    assert all(n["reachable"] for n in result["nodes"])
    by_name = {c["name"]: c for c in result["containers"]}
    for name in ("kv", "hot"):
        assert (by_name[name]["node"], by_name[name]["cluster"]) == ("east-1", "east")
        assert by_name[name]["state"] == "running"
        assert by_name[name]["memory_bytes"] > 1_000_000
        assert by_name[name]["uptime_s"] > 0
    assert by_name["kv"]["image"] == "whimbrel-lab/redis:7"


def inventory_helpers() -> set[int]:
    """The pids of inventory helpers running on this machine (the lab's nodes share its
    processes)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # it ended meanwhile
            continue
        if argv[0] == b"python3" and b"this node's containers, each time" in b"".join(argv):
            found.add(int(cmdline.parent.name))
    return found


async def _watched(
    config_path: str, node: str, answers: int
) -> tuple[list[NodeInventory], list[set[int]], set[int]]:
    """`answers` answers of the node's inventory stream, the helpers running at each, and
    after."""
    config = load_config(Path(config_path))
    got, running = [], []
    async with SessionPool(config) as pool:
        stream = watch_inventory(pool, config.node(node), every_s=0.5)
        async with aclosing(stream):
            async for inventory in stream:
                got.append(inventory)
                running.append(inventory_helpers())
                if len(got) == answers:
                    break
        await asyncio.sleep(1.0)  # sshd sees the channel closed, the helper its stdin end
        return got, running, inventory_helpers()


def test_the_consoles_inventory_stream_is_one_helper_per_node_that_ends_with_it(
    lab: dict,
) -> None:
    answers, running, after = asyncio.run(_watched(lab["config"], "east-1", answers=4))
    assert all(a.reachable for a in answers), [a.error for a in answers]
    assert all({"kv", "hot"} <= {c.name for c in a.containers} for a in answers)
    assert all(a.memory_available for a in answers)
    assert len(running[0]) == 1 and running == [running[0]] * 4  # one helper answered them all
    assert after == set()  # and it ended with the stream


@pytest.fixture
def west2_sshd_stopped(lab: dict) -> Iterator[None]:
    node = build_topology().node("west-2")
    daemons.stop_sshd(node)
    try:
        yield
    finally:
        daemons.start_sshd(node)


def test_ls_marks_a_node_without_sshd_unreachable_and_lists_the_others(
    lab: dict, west2_sshd_stopped: None
) -> None:
    started = time.monotonic()
    result = ls_json(lab["config"], "--timeout", "3s")
    took = time.monotonic() - started
    nodes = {n["name"]: n for n in result["nodes"]}
    assert not nodes["west-2"]["reachable"]
    assert "refused" in nodes["west-2"]["error"]
    assert all(nodes[n]["reachable"] for n in ("east-1", "east-2", "west-1"))
    assert {"kv", "hot"} <= {c["name"] for c in result["containers"]}
    assert took < 10, f"ls took {took:.1f} s with one node down"


def _config_with_known_hosts(lab: dict, tmp_path: Path, lines: list[str]) -> str:
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    text = Path(lab["config"]).read_text().replace(lab["known_hosts"], str(known))
    config = tmp_path / "config.toml"
    config.write_text(text)
    return str(config)


def test_the_inventory_stream_of_a_node_without_sshd_says_why_and_keeps_trying(
    lab: dict, west2_sshd_stopped: None
) -> None:
    answers, _, after = asyncio.run(_watched(lab["config"], "west-2", answers=2))
    assert [a.reachable for a in answers] == [False, False]
    assert all("refused" in (a.error or "") for a in answers), [a.error for a in answers]
    assert after == set()


def test_a_node_whose_host_key_changed_is_refused_with_its_fingerprint(
    lab: dict, tmp_path: Path
) -> None:
    known = Path(lab["known_hosts"]).read_text().splitlines()
    east2 = next(n for n in lab["nodes"] if n["name"] == "east-2")
    west2_line = next(line for line in known if line.startswith("198.18.2.11,"))
    forged = [line for line in known if not line.startswith(east2["address"] + ",")]
    forged.append(f"{east2['address']} {' '.join(west2_line.split()[1:])}")
    result = ls_json(_config_with_known_hosts(lab, tmp_path, forged))
    nodes = {n["name"]: n for n in result["nodes"]}
    assert not nodes["east-2"]["reachable"]
    assert "host key CHANGED" in nodes["east-2"]["error"]
    assert "SHA256:" in nodes["east-2"]["error"]
    assert nodes["east-1"]["reachable"]


def test_a_node_whose_host_key_is_unknown_is_refused_not_accepted(
    lab: dict, tmp_path: Path
) -> None:
    known = Path(lab["known_hosts"]).read_text().splitlines()
    without = [line for line in known if not line.startswith("198.18.1.11,")]
    config = _config_with_known_hosts(lab, tmp_path, without)
    result = ls_json(config)
    nodes = {n["name"]: n for n in result["nodes"]}
    assert "host key unknown" in nodes["east-2"]["error"]
    assert "SHA256:" in nodes["east-2"]["error"]
    # Nothing was written: the file still lacks the key.
    assert Path(tmp_path / "known_hosts").read_text().count("\n") == len(without)


@pytest.fixture
def wan(lab: dict) -> Iterator[None]:
    yield
    lab_module.set_wan(lab["rtt_ms"], lab["bandwidth_mbit"])


@pytest.mark.parametrize("rtt_ms", [20, 50, 100])
def test_probe_rtt_is_within_10_percent_of_the_set_rtt(lab: dict, wan: None, rtt_ms: int) -> None:
    lab_module.set_wan(rtt_ms, None)
    done = whimbrel("probe", "east-1", "west-1", "--bytes", "0", "--json", config=lab["config"])
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)["rtt_ms"]
    print(f"set {rtt_ms} ms, probe says {measured:.2f} ms")
    assert abs(measured - rtt_ms) <= 0.10 * rtt_ms


@pytest.mark.parametrize("mbit", [100, 200])
def test_probe_throughput_is_within_15_percent_of_the_cap_and_leaves_no_trust_behind(
    lab: dict, wan: None, mbit: int
) -> None:
    lab_module.set_wan(None, mbit)
    done = whimbrel("probe", "east-1", "west-1", "--bytes", "32MiB", "--json", config=lab["config"])
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)["throughput_mbit"]
    print(f"cap {mbit} Mbit/s, probe says {measured:.1f} Mbit/s")
    assert abs(measured - mbit) <= 0.15 * mbit
    west1 = build_topology().node("west-1")
    assert "whimbrel-ephemeral" not in west1.authorized_keys.read_text()
    assert not [p for p in Path("/tmp").iterdir() if p.name.startswith("whimbrel-")]


def test_probe_at_a_long_round_trip_passes_what_one_ssh_window_allows(lab: dict, wan: None) -> None:
    lab_module.set_wan(100, 400)
    done = whimbrel("probe", "east-1", "west-1", "--json", config=lab["config"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    one_window_mbit = 2 * 2**20 * 8 / 0.1 / 1e6  # 168 Mbit/s
    print(
        f"100 ms, cap 400 Mbit/s: {result['throughput_mbit']:.1f} Mbit/s over "
        f"{result['throughput_stripes']} streams (one stream: at most {one_window_mbit:.0f})"
    )
    # A stripe per 21 ms of the round trip as measured: 5 at 100 ms, 6 at 105 ms or more.
    measured = result["rtt_ms"] / 1000
    assert result["throughput_stripes"] == stripes_for(measured) >= 5, measured
    assert result["throughput_mbit"] > 2 * one_window_mbit


@pytest.mark.parametrize("mib_per_s", [1, 8, 32])
def test_dirty_reports_memwriters_rate_within_20_percent_with_its_method(
    lab: dict, mib_per_s: int
) -> None:
    name = f"dirty{mib_per_s}"
    ssh_east2 = build_topology().node("east-2").lan_address
    ssh(ssh_east2, f"docker run -d --name {name} --network none whimbrel-lab/memwriter:1 "
                   f"memwriter --size 256MiB --hot 256MiB --rate {mib_per_s}MiB/s")  # fmt: skip
    try:
        time.sleep(1)
        done = whimbrel("dirty", f"east-2/{name}", "--seconds", "4", "--json",
                        config=lab["config"])  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        measured = result["bytes_per_s"] / 2**20
        print(f"set {mib_per_s} MiB/s, measured {measured:.2f} MiB/s ({result['method']})")
        assert result["method"] in ("hash", "soft-dirty")
        assert abs(measured - mib_per_s) <= 0.2 * mib_per_s
    finally:
        ssh(ssh_east2, f"docker rm -f {name} >/dev/null; true")


def test_dirty_on_an_idle_redis_is_close_to_zero(lab: dict) -> None:
    done = whimbrel("dirty", "east-1/kv", "--seconds", "3", "--json", config=lab["config"])
    assert done.returncode == 0, done.stderr
    # Redis's housekeeping touches a few dozen pages a second: far below any workload here.
    assert json.loads(done.stdout)["bytes_per_s"] < 512 * 1024
