"""whimbrel node helper: ephemeral node-to-node trust (standard library only; sent over SSH).

  grant FILE ID MINUTES PUBKEY RECEIVER_B64 [FROM]
      on the receiving node: put the receiver script in a private temp dir and append to the
      authorized_keys FILE one line for PUBKEY, restricted (no pty, no forwarding), forced to
      run that script, and expiring by itself after MINUTES even if never revoked. FROM, an
      OpenSSH pattern list of the addresses the sending node connects from, becomes the
      line's from="FROM": the key then works from nowhere else. Without it there is no from=
      (a relay or NAT on the way can hide the sender's address, so it is opt-in).
  revoke FILE ID DIR
      remove that line and the temp dir.
  keyfile KNOWN_HOSTS_LINE          (the private key on stdin)
      on the sending node: a private temp dir holding the key, a known_hosts file with the
      receiver's host key, as the operator's verified connection saw it, and the ssh_config
      the link's ssh runs with (-F) in place of the node user's (all three 0600).
  cleanup DIR
      remove such a temp dir.
Every grant and revoke also drops whimbrel lines whose expiry has passed, so a crashed
operator leaves nothing that outlives its expiry; other lines are kept byte for byte. The
file is never edited in place: a new copy with its mode and owner is renamed over it, so a
crash leaves the old file or the new one, never a truncated one. A symlinked FILE is refused.
Prints one JSON line.
"""

import base64
import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from nodelib import LINK_ARG, expand_home, login_user
from restorework import RESTORE_DIR, lazy_fill, wait_lazy_fill

TAG = "whimbrel-ephemeral:"
PREFIX = "whimbrel-"
EXPIRY = re.compile(rb'expiry-time="(\d{12})"')
LOCK_SUFFIX = ".whimbrel-lock"
# Addresses, CIDR masks, wildcards and host names only: nothing that could end the quoted
# option or the line.
SAFE_PATH = re.compile(r"/[A-Za-z0-9_./+-]+")  # nothing a forced command would read as syntax
FROM = re.compile(r"[A-Za-z0-9.:/*?-]+(,[A-Za-z0-9.:/*?-]+)*")
# The same checks as the link's `ssh -o` options, so that this file alone never lets ssh
# accept a host key it cannot check.
SSH_CONFIG = """\
# whimbrel: the only config of one node-to-node link's ssh (ssh -F)
Host *
    StrictHostKeyChecking yes
    UserKnownHostsFile "{dir}/known_hosts"
    GlobalKnownHostsFile /dev/null
    BatchMode yes
"""


def _private_dir(label):
    return tempfile.mkdtemp(prefix=PREFIX + label + "-")  # mode 0700


def _is_ours(path):
    # Not tempfile.gettempdir(): it skips a temp dir it cannot write to, a full disk's.
    parents = {os.path.realpath(d) for d in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp") if d}
    real = os.path.realpath(path)
    return os.path.dirname(real) in parents and os.path.basename(real).startswith(PREFIX)


def _open_no_link(path, flags):
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            sys.exit(f"trust: refusing {path}: a symbolic link")
        raise


def _rewrite(path, keep, extra=b""):
    """Replace authorized_keys by a copy keeping the lines for which keep(line) is true, plus
    `extra`, under the lock beside it."""
    path = expand_home(path)
    login = login_user()
    if login is not None and not os.path.isdir(os.path.dirname(path)):
        # Made for the login user: sshd reads its keys as that user.
        os.makedirs(os.path.dirname(path), mode=0o700)
        os.chown(os.path.dirname(path), login[0], login[1])
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # A lock file of its own: the rename gives authorized_keys a new inode, so a waiter locking
    # the file itself would go on with the replaced copy. It stays, empty, after: removing it
    # would let a waiter lock the removed file while a newcomer locks a new one.
    lock = _open_no_link(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            fd = _open_no_link(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang us
        except FileNotFoundError:
            lines, original = [], None
        else:
            with os.fdopen(fd, "rb") as f:
                original = os.fstat(fd)
                if not stat.S_ISREG(original.st_mode):
                    sys.exit(f"trust: refusing {path}: not a regular file")
                lines = f.readlines()  # split at b"\n" only, so a kept line is kept byte for byte
        kept = [line for line in lines if keep(line)]
        if kept != lines or extra:
            if kept and not kept[-1].endswith(b"\n"):
                kept[-1] += b"\n"
            _replace(path, b"".join(kept) + extra, original)
    finally:
        os.close(lock)


def _replace(path, data, original):
    """Rename a new file holding data over path: a crash leaves the old file or the new one."""
    directory = os.path.dirname(path)
    # O_EXCL|O_NOFOLLOW, mode 0600, owned by whoever runs this: the original's are put back.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + "." + PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            if original is not None:
                # The owner first: a chown can clear the set-id bits of a mode set before it.
                os.fchown(fd, original.st_uid, original.st_gid)
                os.fchmod(fd, stat.S_IMODE(original.st_mode))
            elif login_user() is not None:  # a new file, for the login user's sshd to read
                os.fchown(fd, *login_user()[:2])
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself is then on disk
    finally:
        os.close(dir_fd)


def _unexpired(line):
    if TAG.encode() not in line:
        return True
    match = EXPIRY.search(line)
    return bool(match) and match.group(1) > time.strftime("%Y%m%d%H%M").encode()


def grant(path, ident, minutes, pubkey, receiver_b64, link_from=""):
    # fullmatch: a `$` would let a trailing newline through, and with it a line of its own.
    if (
        not re.fullmatch(r"[A-Za-z0-9_-]+", ident)
        or not re.fullmatch(r"ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+", pubkey)
        or (link_from and not FROM.fullmatch(link_from))
    ):
        sys.exit("trust: refusing a malformed id, key or from= pattern")
    workdir = _private_dir(ident)
    script = os.path.join(workdir, "receiver.py")
    with open(script, "wb") as f:
        f.write(base64.b64decode(receiver_b64))
    expiry = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 60 * int(minutes)))
    options = ["restrict"] + ([f'from="{link_from}"'] if link_from else [])
    run = f"{_interpreter()} {script}"
    if login_user() is not None:
        # Logged in as a user who becomes root with sudo, the link's sessions do the same;
        # sudo resets the environment, so what the source asked for goes as one argument
        # (double-quoted for the login shell: no word of it is expanded or split).
        run = f'sudo -n {run} {LINK_ARG} \\"$SSH_ORIGINAL_COMMAND\\"'
    options += [f'command="{run}"', f'expiry-time="{expiry}"']
    line = f"{','.join(options)} {pubkey} {TAG}{ident}\n"
    try:
        _rewrite(path, _unexpired, extra=line.encode())
    except BaseException:  # sys.exit() included: no receiver dir without its key line
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    print(json.dumps({"dir": workdir, "expiry": expiry}))


def _interpreter():
    """The interpreter running this, by its own path, for the link's forced command: each of a
    link's sessions then starts Python without a PATH lookup or a shim (the lab's pyenv shim
    cost 0.1 s of a core a session, and a round opens a session a stripe, the armed hand-over
    as many again, while CRIU dumps on the same cores)."""
    exe = os.path.realpath(sys.executable or "")
    return exe if SAFE_PATH.fullmatch(exe) and os.access(exe, os.X_OK) else "python3"


def revoke(path, ident, workdir):
    _rewrite(path, lambda line: _unexpired(line) and (TAG + ident).encode() not in line)
    cleanup(workdir)


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def keyfile(known_hosts_line):
    workdir = _private_dir("key")
    _write_private(os.path.join(workdir, "id"), sys.stdin.buffer.read())
    _write_private(os.path.join(workdir, "known_hosts"), (known_hosts_line.strip() + "\n").encode())
    _write_private(os.path.join(workdir, "ssh_config"), SSH_CONFIG.format(dir=workdir).encode())
    print(json.dumps({"dir": workdir}))


# How long a receiver dir's removal waits for its lazy restore's fill to end (a 2 GiB fill
# from local page files ended 1.0 s after the restore began); a daemon still filling after it
# is left to finish, never killed: the pages it has not filled are the container's.
LAZY_FILL_WAIT_S = 40.0


def cleanup(workdir):
    result = {"removed": workdir}
    if workdir and os.path.isdir(workdir) and _is_ours(workdir):
        if os.path.isdir(os.path.join(workdir, RESTORE_DIR)):
            t0 = time.monotonic()
            if not wait_lazy_fill(workdir, LAZY_FILL_WAIT_S):
                result["warning"] = f"a lazy restore's fill runs on after {LAZY_FILL_WAIT_S:.0f} s"
            result["lazy_fill_wait_s"] = round(time.monotonic() - t0, 3)
            result["lazy_fill"] = lazy_fill(workdir)
        # The link's shared ssh connections (one a stripe): end them too. Asking a master to
        # exit needs no config, and a node user's config must not be able to stop it (-F).
        for master in glob.glob(os.path.join(workdir, "master*")):
            subprocess.run(
                ["ssh", "-F", "/dev/null", "-o", "ControlPath=" + master, "-O", "exit", "whimbrel"],
                capture_output=True,
                timeout=10,
            )
        # The master removes its socket as it exits, perhaps while this walks the dir.
        shutil.rmtree(workdir, ignore_errors=True)
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
    print(json.dumps(result))


if __name__ == "__main__":
    actions = {"grant": grant, "revoke": revoke, "keyfile": keyfile, "cleanup": cleanup}
    actions[sys.argv[1]](*sys.argv[2:])
