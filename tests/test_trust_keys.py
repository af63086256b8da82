"""The node helper trust.py on a temporary authorized_keys, run as the nodes run it (a
subprocess): the file is replaced whole, never edited in place, with its mode and owner; lines
not whimbrel's stay byte for byte; a symlink is never followed; from= is there when asked for
and a hostile pattern never reaches the file."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRUST = Path(__file__).parents[1] / "backends" / "remote" / "trust.py"
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1bGxzaGl0IGtleSBmb3IgdGVzdHMgb25seSBoZXJl"
RECEIVER = base64.b64encode(b"print('receiver')\n").decode()
# Someone else's lines: a comment, CRLF, bytes that are not UTF-8, trailing blanks.
OTHERS = (
    b"# keys of the node user\n"
    b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther alice@laptop\r\n"
    b'command="/usr/bin/backup",no-pty ssh-rsa AAAAB3Nza bob \xff\xfe latin\n'
    b"\n"
    b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIThird carol   \n"
)
EXPIRED = b'restrict,expiry-time="202001010000" ssh-ed25519 AAAAold whimbrel-ephemeral:0ld0ld\n'


def trust(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(TRUST), *args],
        capture_output=True,
        timeout=30,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )


def grant(tmp_path: Path, keys: Path, *link_from: str, ident: str = "abc123") -> dict:
    done = trust(tmp_path, "grant", str(keys), ident, "60", PUBKEY, RECEIVER, *link_from)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def revoke(tmp_path: Path, keys: Path, workdir: str, ident: str = "abc123") -> None:
    done = trust(tmp_path, "revoke", str(keys), ident, workdir)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """An authorized_keys holding others' lines, owned by uid 1234 gid 2345, mode 0640."""
    (tmp_path / "tmp").mkdir()
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    path = ssh_dir / "authorized_keys"
    path.write_bytes(OTHERS)
    os.chown(path, 1234, 2345)
    path.chmod(0o640)
    return path


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def ours(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if b"whimbrel-ephemeral:" in line]


def test_grant_then_revoke_keeps_others_lines_byte_for_byte_and_the_mode_and_owner(
    tmp_path: Path, keys: Path
) -> None:
    before = keys.stat().st_ino
    granted = grant(tmp_path, keys)
    assert keys.read_bytes().startswith(OTHERS)
    (line,) = ours(keys)
    assert line.endswith(f"{PUBKEY} whimbrel-ephemeral:abc123".encode())
    assert line.startswith(b"restrict,command=") and b'expiry-time="' in line
    assert b"from=" not in line  # none unless asked for
    assert owner_and_mode(keys) == (1234, 2345, 0o640)
    # A new file renamed over the old one, not the old one rewritten in place.
    assert keys.stat().st_ino != before

    revoke(tmp_path, keys, granted["dir"])
    assert keys.read_bytes() == OTHERS
    assert owner_and_mode(keys) == (1234, 2345, 0o640)
    assert not Path(granted["dir"]).exists()
    # Nothing left beside it but the empty lock file, private.
    lock = keys.with_name("authorized_keys.whimbrel-lock")
    assert sorted(p.name for p in keys.parent.iterdir()) == [keys.name, lock.name]
    assert lock.read_bytes() == b"" and lock.stat().st_mode & 0o777 == 0o600


def test_a_missing_authorized_keys_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    keys = tmp_path / "home" / ".ssh" / "authorized_keys"
    granted = grant(tmp_path, keys)
    assert len(ours(keys)) == 1 and keys.stat().st_mode & 0o777 == 0o600
    assert keys.parent.stat().st_mode & 0o777 == 0o700
    revoke(tmp_path, keys, granted["dir"])
    assert keys.read_bytes() == b""


def test_whimbrel_lines_past_their_expiry_are_dropped_by_grant_and_by_revoke(
    tmp_path: Path, keys: Path
) -> None:
    keys.write_bytes(OTHERS + EXPIRED)
    granted = grant(tmp_path, keys)
    assert keys.read_bytes().startswith(OTHERS) and EXPIRED not in keys.read_bytes()
    assert [b"abc123" in line for line in ours(keys)] == [True]

    with keys.open("ab") as f:
        f.write(EXPIRED)
    revoke(tmp_path, keys, granted["dir"])
    assert keys.read_bytes() == OTHERS


def test_a_link_from_pattern_becomes_the_lines_from_option(tmp_path: Path, keys: Path) -> None:
    pattern = "198.18.1.1,198.18.2.0/24,2001:db8::*,node-?.example"
    grant(tmp_path, keys, pattern)
    (line,) = ours(keys)
    assert line.startswith(f'restrict,from="{pattern}",command="/'.encode()), line


def test_the_forced_command_names_the_interpreter_by_its_own_path(
    tmp_path: Path, keys: Path
) -> None:
    # No PATH lookup or shim for each of a link's sessions: the interpreter that granted it.
    granted = grant(tmp_path, keys)
    (line,) = ours(keys)
    command = line.split(b'command="')[1].split(b'"')[0].decode()
    interpreter, script = command.split(" ")
    assert os.path.isabs(interpreter) and os.access(interpreter, os.X_OK)
    assert script == os.path.join(granted["dir"], "receiver.py")


@pytest.mark.parametrize(
    "hostile",
    [
        '198.18.1.1",command="/bin/sh',
        "198.18.1.1 ssh-ed25519 AAAA",
        "198.18.1.1\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5 planted",
        "198.18.1.1\n",
        "!198.18.1.1",
        "198.18.1.1,",
    ],
    ids=["quote", "space", "newline", "trailing-newline", "negation", "empty-entry"],
)
def test_a_hostile_from_pattern_is_refused_before_anything_is_written(
    tmp_path: Path, keys: Path, hostile: str
) -> None:
    done = trust(tmp_path, "grant", str(keys), "abc123", "60", PUBKEY, RECEIVER, hostile)
    assert done.returncode != 0 and b"malformed" in done.stderr
    assert keys.read_bytes() == OTHERS
    assert list((tmp_path / "tmp").iterdir()) == []  # no receiver dir either


def test_a_symlinked_authorized_keys_is_refused_and_its_target_untouched(
    tmp_path: Path, keys: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    keys.rename(elsewhere)
    keys.symlink_to(elsewhere)
    done = trust(tmp_path, "grant", str(keys), "abc123", "60", PUBKEY, RECEIVER)
    assert done.returncode != 0 and b"symbolic link" in done.stderr
    assert keys.is_symlink() and elsewhere.read_bytes() == OTHERS
    assert list((tmp_path / "tmp").iterdir()) == []  # the receiver dir removed again


def test_a_symlinked_lock_file_is_refused_and_never_followed(tmp_path: Path, keys: Path) -> None:
    planted = tmp_path / "planted"
    keys.with_name("authorized_keys.whimbrel-lock").symlink_to(planted)
    done = trust(tmp_path, "grant", str(keys), "abc123", "60", PUBKEY, RECEIVER)
    assert done.returncode != 0 and b"symbolic link" in done.stderr
    assert not planted.exists() and keys.read_bytes() == OTHERS
