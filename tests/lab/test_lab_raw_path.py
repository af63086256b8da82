"""The raw path the engine builds on: a runc-direct CRIU checkpoint of a Docker container on a
node of one cluster, its images sent over SSH across the WAN, and `docker start --checkpoint`
of an identically configured container on a node of the other cluster."""

from __future__ import annotations

import shlex
import time

import pytest

from tests.labtools import SSH_OPTS, ssh
from whimbrel.backends.lab.images import REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.workloads import load_redis, missing_keys

pytestmark = pytest.mark.lab
NAME = "rawpath-kv"
PORT = 6390
KEYS = 50_000


def _docker_root(node: dict) -> str:
    return f"/var/lib/wblab/nodes/{node['name']}/docker"


def _runc_root(node: dict) -> str:
    return f"/run/wblab/{node['name']}/dx/runtime-runc/moby"


def test_redis_checkpointed_on_east_restores_on_west_with_every_key(lab: dict) -> None:
    by_name = {n["name"]: n for n in lab["nodes"]}
    src, dst = by_name["east-1"], by_name["west-1"]
    spec = f"--name {NAME} --network host {REDIS_IMAGE} redis-server {REDIS_CONF} --port {PORT}"
    run_cmd, create_cmd = f"docker run -d {spec}", f"docker create {spec}"
    try:
        ssh(src["address"], run_cmd)
        deadline = time.monotonic() + 15
        while True:
            try:
                assert load_redis(src["address"], PORT, KEYS) == KEYS
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        cid = ssh(src["address"], f"docker inspect -f '{{{{.Id}}}}' {NAME}").strip()
        images, work = f"/tmp/{NAME}-img", f"/tmp/{NAME}-work"
        ssh(
            src["address"],
            f"rm -rf {images} {work} && runc --root {_runc_root(src)} checkpoint "
            f"--image-path {images} --work-path {work} {cid}",
        )
        state = ssh(src["address"], f"docker inspect -f '{{{{.State.Status}}}}' {NAME}").strip()
        assert state == "exited"

        new_id = ssh(dst["address"], create_cmd).strip()
        target_dir = f"{_docker_root(dst)}/containers/{new_id}/checkpoints/raw"
        receive = f"mkdir -p {target_dir} && tar -C {target_dir} -xf -"
        send = " ".join(
            [
                "tar",
                "-C",
                images,
                "-cf",
                "-",
                ".",
                "|",
                "ssh",
                *map(shlex.quote, SSH_OPTS),
                f"root@{dst['wan_address']}",
                shlex.quote(receive),
            ]
        )
        ssh(src["address"], send)
        ssh(dst["address"], f"docker start --checkpoint raw {NAME}")

        assert missing_keys(dst["address"], PORT, KEYS) == []
    finally:
        for node in (src, dst):
            ssh(node["address"], f"docker rm -f {NAME} >/dev/null 2>&1; rm -rf /tmp/{NAME}-*; true")
