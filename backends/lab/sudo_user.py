"""The lab's sudo user: the login of the node reached as a normal user who becomes root with
passwordless sudo (topology.SUDO_USER), made at `lab up` and removed at `lab down`.

It may use the nodes' Docker sockets (the docker group: the operator reaches Docker through
the SSH connection as this user), and its ~/.ssh/authorized_keys holds the lab's key, where
whimbrel also adds a migration's short-lived keys. Tests make its sudo ask for a password.
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

from whimbrel.backends.lab.system import run

SUDOERS = Path("/etc/sudoers.d/whimbrel-lab")


def make(name: str, public_key: str) -> None:
    remove(name)
    # A password of "*": none works, yet the account is not locked (sshd refuses a locked
    # account even a key).
    run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", "docker",
         "--password", "*", name])  # fmt: skip
    home = Path(pwd.getpwnam(name).pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key)
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        shutil.chown(path, name, name)
    allow(name, password=False)


def allow(name: str, *, password: bool) -> None:
    """The user's sudo rule: every command as root, with or without asking a password."""
    rule = f"{name} ALL=(root) {'' if password else 'NOPASSWD: '}ALL\n"
    tmp = SUDOERS.with_suffix(".new")
    tmp.write_text(rule)
    tmp.chmod(0o440)
    run(["visudo", "-c", "-q", "-f", tmp])
    tmp.rename(SUDOERS)


def remove(name: str) -> None:
    SUDOERS.unlink(missing_ok=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    run(["pkill", "-KILL", "-u", name], check=False)
    run(["userdel", "--remove", name], check=False)
