"""whimbrel node helper: ephemeral node-to-node trust (standard library only; sent over SSH).

  grant FILE ID MINUTES PUBKEY RECEIVER_B64
      on the receiving node: put the receiver script in a private temp dir and append to the
      authorized_keys FILE one line for PUBKEY, restricted (no pty, no forwarding), forced to
      run that script, and expiring by itself after MINUTES even if never revoked.
  revoke FILE ID DIR
      remove that line and the temp dir.
  keyfile KNOWN_HOSTS_LINE          (the private key on stdin)
      on the sending node: a private temp dir holding the key, a known_hosts file with the
      receiver's host key, as the operator's verified connection saw it, and the ssh_config
      the link's ssh runs with (-F) in place of the node user's (all three 0600).
  cleanup DIR
      remove such a temp dir.
Every grant and revoke also drops whimbrel lines whose expiry has passed, so a crashed
operator leaves nothing that outlives its expiry. Prints one JSON line.
"""

import base64
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TAG = "whimbrel-ephemeral:"
PREFIX = "whimbrel-"
EXPIRY = re.compile(r'expiry-time="(\d{12})"')
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


def _rewrite(path, keep, extra=""):
    """Rewrite authorized_keys under a lock, keeping lines for which keep(line) is true."""
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        lines = f.read().splitlines(True)
        kept = [line for line in lines if keep(line)]
        if kept != lines or extra:
            if kept and not kept[-1].endswith("\n"):
                kept[-1] += "\n"
            f.seek(0)
            f.write("".join(kept) + extra)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def _unexpired(line):
    if TAG not in line:
        return True
    match = EXPIRY.search(line)
    return bool(match) and match.group(1) > time.strftime("%Y%m%d%H%M")


def grant(path, ident, minutes, pubkey, receiver_b64):
    if not re.match(r"^[A-Za-z0-9_-]+$", ident) or not re.match(
        r"^ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+$", pubkey
    ):
        sys.exit("trust: refusing a malformed id or key")
    workdir = _private_dir(ident)
    script = os.path.join(workdir, "receiver.py")
    with open(script, "wb") as f:
        f.write(base64.b64decode(receiver_b64))
    expiry = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 60 * int(minutes)))
    line = f'restrict,command="python3 {script}",expiry-time="{expiry}" {pubkey} {TAG}{ident}\n'
    _rewrite(path, _unexpired, extra=line)
    print(json.dumps({"dir": workdir, "expiry": expiry}))


def revoke(path, ident, workdir):
    _rewrite(path, lambda line: _unexpired(line) and (TAG + ident) not in line)
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


def cleanup(workdir):
    if workdir and os.path.isdir(workdir) and _is_ours(workdir):
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
    print(json.dumps({"removed": workdir}))


if __name__ == "__main__":
    actions = {"grant": grant, "revoke": revoke, "keyfile": keyfile, "cleanup": cleanup}
    actions[sys.argv[1]](*sys.argv[2:])
