"""Nodes reached as a normal user who becomes root with `sudo -n` (become = "sudo"): every
command goes through sudo, never asking for a password, and a sudo that would ask is named
with its remedy. On the node, `~` is the login user's home, not root's."""

from __future__ import annotations

import asyncio
import json
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from tests.node_helpers import load, write
from whimbrel.backends.config import Config, Node
from whimbrel.backends.ssh import NodeSession, SudoRefused, sudo_refusal

AS_USER = Node("east-2", "east", "198.18.1.11", ssh_user="wbop", become="sudo")
AS_ROOT = Node("east-1", "east", "198.18.1.10", ssh_user="root")


def _session(node: Node) -> NodeSession:
    config = Config(Path("/dev/null"), {}, (node,))
    return NodeSession(node, config, asyncio.Semaphore(1))


def test_a_become_sudo_node_runs_every_command_through_sudo_without_a_prompt() -> None:
    assert _session(AS_USER).command(["python3", "-c", "print('a b')", "x;y"]) == (
        "sudo -n -- python3 -c 'print('\"'\"'a b'\"'\"')' 'x;y'"
    )
    assert _session(AS_ROOT).command(["python3", "-V"]) == "python3 -V"


def test_a_sudo_asking_for_a_password_is_named_with_its_remedy() -> None:
    refused = sudo_refusal(AS_USER, "sudo: a password is required\n")
    assert isinstance(refused, SudoRefused)
    assert str(refused) == (
        "east-2: sudo -n as wbop: a password is required: give wbop passwordless sudo "
        "(NOPASSWD in sudoers), or connect as root"
    )
    assert sudo_refusal(AS_USER, "Traceback (most recent call last):\n") is None
    assert sudo_refusal(AS_ROOT, "sudo: a password is required\n") is None


def test_on_the_node_home_is_the_login_users_under_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    nodelib = load("nodelib")
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(nodelib.os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "nobody")
    assert nodelib.login_user() == (nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)
    assert nodelib.expand_home("~/.ssh/authorized_keys") == f"{nobody.pw_dir}/.ssh/authorized_keys"
    assert nodelib.expand_home("/etc/keys") == "/etc/keys"
    monkeypatch.delenv("SUDO_USER")
    assert nodelib.login_user() is None


@pytest.mark.parametrize("asked", ["expect 20261203-x", "forget 20261203-x", ""])
def test_what_a_source_asks_through_sudo_is_held_to_the_links_actions(
    tmp_path: Path, asked: str
) -> None:
    # The operator's own actions come as separate arguments; the source's request, however
    # worded, arrives as one argument after --link and is parsed as SSH_ORIGINAL_COMMAND is.
    receiver = write("receiver", tmp_path)
    done = subprocess.run(
        [sys.executable, str(receiver), "--link", asked],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "refused" in json.loads(done.stdout.splitlines()[-1])["error"]
