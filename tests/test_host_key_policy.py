"""Host key policy: every host key is checked, whatever an ssh config says.

The operator's connections (asyncssh) always name their known_hosts, which beats ~/.ssh/config;
a node-to-node link's ssh reads only the config whimbrel writes for it. No lab: options are read
the way asyncssh.connect reads them (config=(): with ~/.ssh/config), and OpenSSH's with
`ssh -G`, which connects nowhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from whimbrel.backends.channel import NodeLink
from whimbrel.backends.config import Config, Node
from whimbrel.backends.ssh import HostKeyRefused, NodeSession

TRUST = Path(__file__).parents[1] / "backends" / "remote" / "trust.py"
EAST1 = Node("east-1", "east", "198.18.1.10")
WEST1 = Node("west-1", "west", "198.18.2.10", wan_address="198.19.2.10")
CHECKS_OFF = "Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile {}\n"


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_config: str) -> Path:
    """A HOME whose ~/.ssh/config is `ssh_config`, for asyncssh to read."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(ssh_config)
    monkeypatch.setenv("HOME", str(home))
    return home


def _session(known_hosts: Path | None, node: Node = EAST1) -> NodeSession:
    config = Config(Path("whimbrel.toml"), {}, (node,), known_hosts=known_hosts)
    return NodeSession(node, config, asyncio.Semaphore(1))


async def _no_connect(*_: Any, **__: Any) -> None:
    raise AssertionError("a refused connection was attempted")


@pytest.mark.parametrize("named", [True, False], ids=["the config's file", "~/.ssh/known_hosts"])
def test_the_options_handed_to_asyncssh_always_name_a_known_hosts_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    home = _home(tmp_path, monkeypatch, "")
    configured = tmp_path / "known_hosts" if named else None
    options = _session(configured)._options()
    assert options["known_hosts"] == str(configured or home / ".ssh" / "known_hosts")


@pytest.mark.parametrize("setting", ["none", "/dev/null"])
def test_an_ssh_config_turning_host_key_checks_off_does_not_reach_asyncssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    home = _home(tmp_path, monkeypatch, CHECKS_OFF.format(setting))
    # The config alone: no check at all, or one against an empty file (asyncssh reads no
    # StrictHostKeyChecking).
    alone = asyncssh.SSHClientConnectionOptions(config=(), host=EAST1.host)
    assert alone.known_hosts == (None if setting == "none" else [setting])
    # Whimbrel's config names no file: ~/.ssh/known_hosts, whatever ~/.ssh/config says.
    ours = asyncssh.SSHClientConnectionOptions(config=(), **_session(None)._options())
    assert ours.known_hosts == str(home / ".ssh" / "known_hosts")


def test_the_ssh_config_still_gives_the_host_name_user_and_jump_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _home(
        tmp_path,
        monkeypatch,
        f"Host {EAST1.host}\n    Hostname 10.0.0.7\n    User alice\n    ProxyJump bastion\n",
    )
    options = asyncssh.SSHClientConnectionOptions(config=(), **_session(tmp_path / "kh")._options())
    assert (options.host, options.username, options.tunnel) == ("10.0.0.7", "alice", "bastion")


@pytest.mark.parametrize(
    ("ssh_config", "hop"),
    [
        (f"Host {EAST1.host}\n    ProxyJump hop1,alice@hop2:2222\n"
         "Host hop2\n    UserKnownHostsFile none\n", "alice@hop2:2222"),
        (f"Host {EAST1.host}\n    ProxyJump hop1\n"
         "Host hop1\n    ProxyJump inner\nHost inner\n    UserKnownHostsFile none\n", "inner"),
    ],
    ids=["a later hop", "the first hop's own jump"],
)  # fmt: skip
def test_a_jump_host_the_ssh_config_reaches_unchecked_is_refused_naming_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_config: str, hop: str
) -> None:
    # asyncssh opens ProxyJump hops with ~/.ssh/config alone, never with our known_hosts.
    _home(tmp_path, monkeypatch, ssh_config)
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setattr(asyncssh, "connect", _no_connect)
    with pytest.raises(HostKeyRefused, match=f"^east-1: the jump host {hop} .* refusing"):
        asyncio.run(_session(known).connection())


def test_a_missing_known_hosts_file_refuses_the_key_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncssh, named a file that is not there, fails as if the node were unreachable.
    home = _home(tmp_path, monkeypatch, "")

    async def no_key(*_: Any, **__: Any) -> None:
        raise OSError("no network in unit tests")

    monkeypatch.setattr(asyncssh, "get_server_host_key", no_key)
    monkeypatch.setattr(asyncssh, "connect", _no_connect)
    with pytest.raises(HostKeyRefused, match="host key unknown") as refused:
        asyncio.run(_session(None).connection())
    assert str(home / ".ssh" / "known_hosts") in str(refused.value)


def test_node_to_node_ssh_reads_the_config_in_the_links_private_dir(tmp_path: Path) -> None:
    link = NodeLink("id", EAST1, WEST1, "/tmp/whimbrel-key-x", "/dst", "root").for_rtt(0.2)
    for argv in link.argvs():
        assert argv[argv.index("-F") + 1] == "/tmp/whimbrel-key-x/ssh_config"
        for option in (
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/tmp/whimbrel-key-x/known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "BatchMode=yes",
        ):
            assert argv[argv.index(option) - 1] == "-o"


def _effective(argv: list[str]) -> dict[str, str]:
    """OpenSSH's settings for `argv` (an ssh command line), as `ssh -G` prints them."""
    done = subprocess.run(
        [argv[0], "-G", *argv[1:]], capture_output=True, text=True, check=True, timeout=30
    )
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_keyfile_writes_a_private_ssh_config_under_which_ssh_checks_the_host_key(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, str(TRUST), "keyfile", "198.19.2.10 ssh-ed25519 AAAAtest"],
        input=b"private key",
        capture_output=True,
        check=True,
        timeout=30,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    workdir = json.loads(done.stdout)["dir"]
    for name in ("id", "known_hosts", "ssh_config"):
        assert os.stat(f"{workdir}/{name}").st_mode & 0o777 == 0o600, name
    link = NodeLink("id", EAST1, WEST1, workdir, "/dst", "root")
    # With the link's options, and with the file alone: it holds nothing weaker.
    for argv in (link.ssh_base(), ["ssh", "-F", f"{workdir}/ssh_config", WEST1.wan_address]):
        settings = _effective(argv)
        assert settings["stricthostkeychecking"] == "true"
        assert settings["userknownhostsfile"] == f"{workdir}/known_hosts"
        assert settings["globalknownhostsfile"] == "/dev/null"
        assert settings["batchmode"] == "yes"
        assert "proxycommand" not in settings and "proxyjump" not in settings
