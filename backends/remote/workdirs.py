"""The source node's migration work dirs and container locks (standard library only).

A migration's work dir (BASE/MIG) holds its dumps, page indexes and hand-over files; the lock
(LOCKS/CID) makes it the container's only migration on this node. Each prepare sweeps what
migrations whose engine died before releasing them left behind.
"""

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time

from nodelib import fail

BASE = "/var/tmp/whimbrel"
LOCKS = "/run/whimbrel-locks"


def workdir(mig):
    if not mig.replace("-", "").isalnum():
        fail("bad migration id")
    return os.path.join(BASE, mig)


def prepared_info(wd):
    with open(os.path.join(wd, "prepare.json")) as f:
        return json.load(f)


# A migration that never reached its agent (preflight: the link, an image shipped, probes)
# holds its lock this long; from the agent on, its daemon's life holds it.
PREFLIGHT_LEASE_S = 1800.0


def lock(mig, cid):
    """Take the container's lock for `mig` (its work dir made first): refused while another
    migration holds it. Checked and taken under a guard lock, so two migrations never both
    find it free, and a fresh lock is never mistaken for a stale one."""
    os.makedirs(LOCKS, mode=0o700, exist_ok=True)
    guard = os.open(os.path.join(LOCKS, ".guard"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        path = os.path.join(LOCKS, cid)
        owner = read_json(path, None)
        if owner is not None and owner.get("migration") != mig and _holds(owner):
            fail(
                "container is already being migrated (migration {}, since {})".format(
                    owner.get("migration", "?"),
                    time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0))),
                )
            )
        write_json(path, {"migration": mig, "since": time.time(), "pid": os.getpid()})
        sweep(mig)
    finally:
        os.close(guard)


# What a dead migration's work dir keeps for `recover`: its outcome and what settling needs.
RECOVERY_FILES = ("prepare.json", "handover.cfg", "handover.json", "handover.jsonl", "handover.pid")


def sweep(own):
    """What migrations whose engine died before releasing them left here, tidied (run under
    the guard by each prepare). A work dir goes whole if its migration never armed a hand-over
    (nothing of it is left to settle on this node); else its dumps and page indexes go and
    what `recover` reads stays. Locks that hold nothing go. Whatever still holds (a process
    of it alive, a hand-over unsettled or fired, a preflight within its lease, aged from the
    dir's last change) is left alone."""
    for name in os.listdir(BASE):
        path = os.path.join(BASE, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if name == own or not stat.S_ISDIR(info.st_mode) or _in_use(name, info.st_mtime):
            continue
        if not os.path.exists(os.path.join(path, "handover.pid")):
            shutil.rmtree(path, ignore_errors=True)
            continue
        for entry in set(os.listdir(path)) - set(RECOVERY_FILES):
            inner = os.path.join(path, entry)
            if os.path.isdir(inner) and not os.path.islink(inner):
                shutil.rmtree(inner, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(inner)
    for name in os.listdir(LOCKS):
        if name.startswith("."):  # the guard
            continue
        owner = read_json(os.path.join(LOCKS, name), {})
        mig = str(owner.get("migration", ""))
        if mig != own and not _in_use(mig, owner.get("since", 0)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(LOCKS, name))


def _in_use(mig, since):
    return _holds({"migration": mig, "since": since}) or _running(mig)


def _running(mig):
    """Does a process of this migration (its agent, daemon, a helper) run here?"""
    if not mig:
        return False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if mig.encode() in f.read():
                return True
    return False


def _holds(owner):
    """Does the lock's owner still hold it? Not once its work dir is gone or its hand-over
    ended settled; always while its daemon lives or its hand-over is unsettled (the container
    may live on the target: a second migration of the frozen source would make two); before
    its agent, for PREFLIGHT_LEASE_S."""
    mig = str(owner.get("migration", ""))
    if not mig.replace("-", "").isalnum() or not os.path.isdir(os.path.join(BASE, mig)):
        return False
    wd = os.path.join(BASE, mig)
    outcome = read_json(os.path.join(wd, "handover.json"), None)
    if outcome is not None:
        return bool(outcome.get("unsettled") or outcome.get("source_left"))
    if daemon_alive(mig):
        return True
    if os.path.exists(os.path.join(wd, "handover.pid")):
        return _fired_log(wd)  # a daemon that died fired leaves it for `recover`
    return time.time() - owner.get("since", 0) < PREFLIGHT_LEASE_S


def _fired_log(wd):
    try:
        with open(os.path.join(wd, "handover.jsonl")) as f:
            return '"kind": "fired"' in f.read()
    except FileNotFoundError:
        return False


def daemon_alive(mig):
    try:
        with open(os.path.join(workdir(mig), "handover.pid")) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return mig.encode() in f.read()  # else that pid is another process now
    except (OSError, ValueError):
        return False


def unlock(cid, mig):
    path = os.path.join(LOCKS, cid)
    if (read_json(path, None) or {}).get("migration") == mig:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def private_base():
    """BASE, where dumps (the container's memory) are written, as root's private dir: made
    0700, or put right if root's own; refused if it is a link or someone else's (/var/tmp is
    world-writable: another user could have made it first)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(BASE, 0o700)
    info = os.lstat(BASE)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{BASE} is not a directory of this user's own: refusing to use it")
    if info.st_mode & 0o077:
        os.chmod(BASE, 0o700)


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, obj):
    temp = f"{path}.{os.getpid()}.new"
    with open(temp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
