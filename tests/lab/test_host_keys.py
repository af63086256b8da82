"""Host keys against the real lab, whatever an ssh config says: the operator's connections check
every node's key however ~/.ssh/config is set, and a node's ssh to another node reads no ssh
config of the node user's (nor of the operator's)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

CHECKS_OFF = "Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile {}\n"
# Fires only for whimbrel's node-to-node ssh (its command line names a whimbrel-key- dir), so
# other lab tests running meanwhile, whose ssh reads the same file, go on unharmed.
NODE_SSH_TRAP = """\
# tests/lab/test_host_keys.py, for one test: a whimbrel node-to-node ssh reading this file
# leaves {marker} and fails
Match exec "grep -qa whimbrel-key- /proc/$PPID/cmdline && touch {marker}"
    ProxyCommand false
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
"""


def whimbrel(*args: str, config: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
    )


def _home(tmp_path: Path, ssh_config: str) -> Path:
    """An operator's HOME with this ~/.ssh/config and an empty ~/.ssh/known_hosts."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(mode=0o700, parents=True)
    (home / ".ssh" / "config").write_text(ssh_config)
    (home / ".ssh" / "known_hosts").write_text("")
    return home


def _config(lab: dict, tmp_path: Path, known_hosts: Path | None) -> str:
    """The lab's config naming `known_hosts` instead of the lab's file (None: naming none)."""
    text = Path(lab["config"]).read_text()
    line = f'known_hosts = "{lab["known_hosts"]}"\n'
    assert line in text
    config = tmp_path / "config.toml"
    config.write_text(text.replace(line, f'known_hosts = "{known_hosts}"\n' if known_hosts else ""))
    return str(config)


def _every_node_refused_as_unknown(config: str, home: Path, known_hosts: Path) -> None:
    done = whimbrel("ls", "--json", config=config, home=home)
    assert done.stdout, done.stderr
    for node in json.loads(done.stdout)["nodes"]:
        assert not node["reachable"], node
        assert "host key unknown" in node["error"] and "SHA256:" in node["error"], node
        assert f"not in {known_hosts}" in node["error"], node


@pytest.mark.parametrize("setting", ["none", "/dev/null"])
def test_an_ssh_config_turning_host_key_checks_off_lets_no_unknown_node_in(
    lab: dict, tmp_path: Path, setting: str
) -> None:
    # Whimbrel's config names no known_hosts: the HOME's own (empty) file applies.
    home = _home(tmp_path, CHECKS_OFF.format(setting))
    _every_node_refused_as_unknown(_config(lab, tmp_path, None), home, home / ".ssh/known_hosts")


def test_the_known_hosts_whimbrel_is_given_beats_the_one_the_ssh_config_names(
    lab: dict, tmp_path: Path
) -> None:
    home = _home(tmp_path, CHECKS_OFF.format(lab["known_hosts"]))  # a file trusting every node
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    _every_node_refused_as_unknown(_config(lab, tmp_path, empty), home, empty)


@pytest.fixture
def node_user_ssh_config(lab: dict) -> Iterator[Path]:
    """The ~/.ssh/config of the nodes' ssh user (root, whose home the nodes share with this
    machine), absent for the test and put back as it was after it, pass or fail."""
    path = Path(pwd.getpwnam("root").pw_dir) / ".ssh" / "config"
    backup = path.with_name("config.whimbrel-test-backup")
    if backup.exists():
        pytest.fail(f"{backup} is left from an earlier run: put it back as {path} first")
    made = not path.parent.exists()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    had = path.exists() or path.is_symlink()
    if had:
        os.replace(path, backup)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        if had:
            os.replace(backup, path)
        if made and not any(path.parent.iterdir()):
            path.parent.rmdir()


def test_node_to_node_ssh_reads_no_ssh_config_of_the_node_user(
    lab: dict, tmp_path: Path, node_user_ssh_config: Path
) -> None:
    marker = tmp_path / "config-read"
    trap = NODE_SSH_TRAP.format(marker=marker)
    node_user_ssh_config.write_text(trap)
    node_user_ssh_config.chmod(0o600)
    west1 = next(n for n in lab["nodes"] if n["name"] == "west-1")
    # The trap works: an ssh reading the file, as a link's did before `-F`, is caught by it.
    armed = subprocess.run(
        ["ssh", "-G", "-i", "/tmp/whimbrel-key-trap/id", west1["wan_address"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "proxycommand false" in armed.stdout.splitlines() and marker.exists()
    marker.unlink()

    home = _home(tmp_path, trap)  # the operator's config alike: it never travels to the nodes
    done = whimbrel(
        "probe", "east-1", "west-1", "--bytes", "4MiB", "--json", config=lab["config"], home=home
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["throughput_mbit"] > 0
    assert not marker.exists(), "a node's ssh read the node user's ~/.ssh/config"
