"""The lab's nodes are real: SSH with verified host keys, a Docker engine and CRIU on each."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from tests.labtools import ssh, ssh_argv
from whimbrel.backends.config import load_config

pytestmark = pytest.mark.lab
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")


def test_every_node_accepts_ssh_with_its_host_key_verified(lab: dict) -> None:
    for node in lab["nodes"]:
        for address in (node["address"], node["wan_address"]):
            assert ssh(address, "hostname -I >/dev/null; echo ok").strip() == "ok"


def test_a_node_with_an_unknown_host_key_is_refused(lab: dict, tmp_path) -> None:
    node = lab["nodes"][0]
    other = lab["nodes"][1]
    known = Path(lab["known_hosts"]).read_text().splitlines()
    # Give the first node's addresses the second node's key: a changed host key.
    other_key = next(line for line in known if line.startswith(other["address"] + ","))
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{node['address']} {' '.join(other_key.split()[1:])}\n")
    proc = subprocess.run(
        ssh_argv(node["address"], "true", known_hosts=str(forged)), capture_output=True, timeout=30
    )
    assert proc.returncode != 0
    assert b"REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr


def test_every_node_runs_its_own_experimental_docker_engine_and_criu(lab: dict) -> None:
    ids = set()
    for node in lab["nodes"]:
        info = ssh(
            node["address"], "docker info --format '{{.DockerRootDir}} {{.ExperimentalBuild}}'"
        ).split()
        assert info[1] == "true", f"{node['name']}: docker not experimental"
        ids.add(info[0])
        version = ssh(node["address"], "criu --version").splitlines()[0]
        major, minor = (int(x) for x in version.split()[-1].split(".")[:2])
        assert (major, minor) >= (4, 2), f"{node['name']}: {version}"
    assert len(ids) == len(lab["nodes"]), "nodes share a Docker data root"


def test_the_lab_config_resolves_every_node_in_the_benchmark_range(lab: dict) -> None:
    config = load_config(Path(lab["config"]))
    assert {n.name for n in config.nodes} == {n["name"] for n in lab["nodes"]}
    for node in config.nodes:
        assert ipaddress.ip_address(node.host) in LAB_RANGE
        assert ipaddress.ip_address(node.wan_address) in LAB_RANGE
        assert node.identity_file is not None and node.identity_file.exists()
    assert {c for c in config.clusters} == {"east", "west"}


def test_the_sample_workloads_run_on_the_first_node(lab: dict) -> None:
    first = lab["nodes"][0]
    names = ssh(first["address"], "docker ps --format '{{.Names}}'").split()
    assert {"kv", "hot"} <= set(names)
