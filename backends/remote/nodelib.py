"""What the node scripts share (standard library only, Python 3.9): their JSON answers, the
Docker CLI, the runc.conf lock, files written whole, a container's tasks resumed. (How a script
gets it on a node: backends/node_scripts.py.)

CRIU reads /etc/criu/runc.conf for every dump and restore runc starts, and its settings
override runc's own: a restore's `leave-stopped` standing in that file while a dump runs leaves
the dumped container stopped (found by two migrations crossing on one host). So each dump and
each restore holds the file with its own options (`criu_conf_with`), under an exclusive lock.
"""

import contextlib
import fcntl
import json
import os
import pwd
import signal
import subprocess
import sys
import threading

CRIU_CONF = "/etc/criu/runc.conf"
CRIU_CONF_SAVED = CRIU_CONF + ".whimbrel-saved"
CRIU_CONF_LOCK = "/run/whimbrel/criu-conf.lock"
# A script's output is JSON lines that whimbrel reads one at a time: a line written by another
# thread (the agent's progress, progress.py) must never cut into one being written.
_OUTPUT = threading.Lock()


def out(obj):
    line = json.dumps(obj) + "\n"
    with _OUTPUT:
        sys.stdout.write(line)
        sys.stdout.flush()


def fail(message):
    out({"error": message})
    sys.exit(1)


# Through sudo (become = "sudo") the environment is reset: a link's forced command (trust.py)
# hands what the source asked for (SSH_ORIGINAL_COMMAND) to the receiver after this word.
LINK_ARG = "--link"


def login_user():
    """The user SSH logged in as when a node's helpers run as root through `sudo -n` (become =
    "sudo"), from SUDO_USER, which sudo sets itself: (uid, gid, home), or None when the login
    user is the one running this."""
    name = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not name or name == "root":
        return None
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


def expand_home(path):
    """`~/...` in the login user's home (what the config's `~` means), not root's."""
    user = login_user()
    if user is not None and path.startswith("~/"):
        return os.path.join(user[2], path[2:])
    return os.path.expanduser(path)


def docker(sock, *args, timeout=120):
    """The Docker CLI on the socket `sock`: its output, or RuntimeError saying what failed."""
    proc = subprocess.run(
        ["docker", "-H", "unix://" + sock, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def _criu_conf_lock():
    os.makedirs(os.path.dirname(CRIU_CONF_LOCK), mode=0o700, exist_ok=True)
    return os.open(CRIU_CONF_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)


@contextlib.contextmanager
def criu_conf_with(options):
    """runc.conf with `options` added, for the block only (one dump or restore: neither runc
    nor Docker 20.10 has a per-container way to name another file, nor a flag for them). The
    lock dies with its holder and the file that was there is saved first: whoever takes the
    lock next puts back what a killed block left."""
    lock = _criu_conf_lock()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        put_back_criu_conf()
        before = read_text(CRIU_CONF)
        os.makedirs(os.path.dirname(CRIU_CONF), exist_ok=True)
        write_atomic(CRIU_CONF_SAVED, json.dumps({"before": before}))
        kept = [line for line in (before or "").splitlines() if line.strip() not in options]
        write_atomic(CRIU_CONF, "\n".join([*kept, *options]) + "\n")
        try:
            yield
        finally:
            put_back_criu_conf()
    finally:
        os.close(lock)


def put_back_criu_conf():
    """The runc.conf saved before a restore, back in place (call with the lock held)."""
    saved = read_text(CRIU_CONF_SAVED)
    if saved is None:
        return
    before = json.loads(saved)["before"]
    if before is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(CRIU_CONF)
    else:
        write_atomic(CRIU_CONF, before)
    os.unlink(CRIU_CONF_SAVED)


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomic(path, text):
    temp = f"{path}.{os.getpid()}.new"
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    sync_dir(os.path.dirname(path))


def sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resume_tasks(pid, cid):
    """SIGCONT every process of the container (CRIU's leave-stopped stops them all); a process
    is found by its cgroup set, which names the container."""
    with open(f"/proc/{pid}/cgroup") as f:
        cgroups = f.read()
    pids = {pid}
    if cid in cgroups:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/cgroup") as f:
                    if f.read() == cgroups:
                        pids.add(int(entry))
    for task in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(task, signal.SIGCONT)
