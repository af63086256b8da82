"""Link keys' from= against the lab's real sshd: a key whose from= does not match where the
source's connection comes from is refused, the same key with the lab's `link_from` is let in,
and `whimbrel probe` across the WAN works with the lab's config (so its link_from is right)."""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.labtools import ssh
from whimbrel.backends.config import Config, load_config
from whimbrel.backends.lab.lab import KNOWN_HOSTS
from whimbrel.backends.ssh import remote_script

pytestmark = pytest.mark.lab

TRUST = remote_script("trust.py").encode()  # as a node gets it: its node modules inlined
# Stands in for the receiver: the forced command says whom the target's sshd let in.
SEEN = base64.b64encode(b"import os; print(os.environ['SSH_CLIENT'].split()[0])\n").decode()


@pytest.fixture
def config(lab: dict) -> Config:
    return load_config(Path(lab["config"]))


@contextmanager
def granted(config: Config, pubkey: str, link_from: str) -> Iterator[None]:
    """A link key on west-1, as open_link grants it, with this from=; revoked after."""
    west1 = config.node("west-1")
    ident = "linktest" + secrets.token_hex(4)

    def trust(*args: str) -> dict:
        out = ssh(west1.host, shlex.join(["python3", "-", *args]), input=TRUST)
        return json.loads(out.splitlines()[-1])

    done = trust("grant", west1.authorized_keys, ident, "5", pubkey, SEEN, link_from)
    try:
        yield
    finally:
        trust("revoke", west1.authorized_keys, ident, done["dir"])


def from_east1(config: Config, key: Path) -> subprocess.CompletedProcess[str]:
    """east-1 connects to west-1 across the WAN with only this key, as a link's ssh does."""
    return subprocess.run(
        ["ip", "netns", "exec", "wb-east-1", "ssh", "-F", "/dev/null", "-T", "-i", str(key),
         "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
         f"root@{config.node('west-1').wan_address}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_link_key_whose_from_does_not_match_the_source_is_refused(
    config: Config, tmp_path: Path
) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    pubkey = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    link_from = config.node("east-1").link_from
    assert link_from, "the lab's config gives east-1 no link_from"

    with granted(config, pubkey, "192.0.2.99"):  # an address no connection here comes from
        refused = from_east1(config, key)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused

    with granted(config, pubkey, link_from):
        let_in = from_east1(config, key)
    assert let_in.returncode == 0, let_in.stderr
    # The target sees the WAN relay's address on its side, one of the lab's link_from.
    assert let_in.stdout.strip() in link_from.split(","), let_in.stdout


def test_whimbrel_probe_across_the_wan_works_with_the_labs_link_from(
    lab: dict, config: Config
) -> None:
    assert all(node.link_from for node in config.nodes), config.nodes
    done = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", lab["config"],
         "probe", "east-1", "west-1"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "over SSH, node to node" in done.stdout, done.stdout
