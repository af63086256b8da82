"""The commit point on the target (standard library only): DECISIONS/MIG/decision, written
once, read by every party that acts (see receiver.py), and the verdict carried out on the
target container.
"""

import contextlib
import json
import os
import shutil
import stat
import threading
import time

from nodelib import out, resume_tasks, sync_dir
from targetdir import CHECKPOINT, read_restored, read_target, target_docker

DECISIONS = "/var/lib/whimbrel/decisions"


def _decision_dir(mig):
    if not (mig and mig.replace("-", "").isalnum()):
        raise ValueError("bad migration id")
    return os.path.join(DECISIONS, mig)


def recorded(mig):
    """The verdict recorded for `mig`: "committed", "aborted", None (none yet), or
    "forgotten" (no decision dir: never expected here, or settled and dropped)."""
    path = _decision_dir(mig)
    try:
        with open(os.path.join(path, "decision"), "rb") as f:
            return json.loads(f.read())["decision"]
    except FileNotFoundError:
        return None if os.path.isdir(path) else "forgotten"


def decide(mig, verdict):
    """Record `verdict` unless one stands; return the one that stands. Written to a temp file,
    synced, then linked into place: link() fails on an existing name, so of two parties
    deciding at once exactly one wins, and a crash leaves either no record or a whole one."""
    path = _decision_dir(mig)
    if not os.path.isdir(path):
        return "forgotten"  # nothing may be decided for a migration no longer expected
    record = os.path.join(path, "decision")
    temp = f"{record}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps({"decision": verdict, "at": time.time()}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, record)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)
    sync_dir(path)
    return recorded(mig)


def expect(mig):
    """Run by the operator before it makes the target container: the decision dir, without
    which nothing can be decided for `mig` here."""
    os.makedirs(DECISIONS, mode=0o700, exist_ok=True)
    os.mkdir(_decision_dir(mig), 0o700)
    sync_dir(DECISIONS)
    out({"expecting": mig})


def forget(mig):
    shutil.rmtree(_decision_dir(mig), ignore_errors=True)
    out({"forgotten": mig})


def settle(mig=None, sock=None, cid=None):
    """Abort unless committed, then carry out the verdict that stands (see receiver.py);
    over the link, the restore's answer too where there was one (the source's copy of it may
    have been lost)."""
    answer = {}
    if mig is None:  # over the link: this migration's own target, from the operator's file
        target = read_target()
        mig, sock, cid = target["migration"], target["docker_socket"], target["container"]
        answer["restored"] = read_restored()
    verdict = abort_target(mig, sock, cid)
    answer["decision"] = verdict
    if verdict != "committed":
        out(answer)
        return
    with serving(sock, cid) as warning:
        if warning:
            answer["warning"] = warning
        out(answer)
    drop_checkpoint(sock, cid)


def abort_target(mig, sock, cid):
    """Record "aborted" unless a verdict stands; the target container goes only if that is the
    verdict (never for "committed", nor for a migration no longer expected here)."""
    verdict = decide(mig, "aborted")
    if verdict == "aborted":
        _remove(sock, cid)
    return verdict


def refuse(mig, sock, cid):
    """The final round failed here: "aborted" recorded unless a verdict stands, the copy gone
    if so; the answer the source resumes on ({"decision": ...}). A copy that cannot go yet
    (its dockerd away) is named in a warning: the operator's cleanup or `recover` removes it,
    and the verdict stands meanwhile."""
    try:
        return {"decision": abort_target(mig, sock, cid)}
    except RuntimeError as exc:  # the removal's: the verdict was recorded first
        return {"decision": recorded(mig), "warning": f"the fenced copy is not removed yet ({exc})"}


def _remove(sock, cid, timeout=30.0):
    """The fenced copy gone. Two parties may abort at once (the receiver on its session's end,
    the operator settling a dead hand-over): a removal already under way is waited for, not an
    error. Anything else is raised: still there, perhaps; the operator's cleanup or `recover`
    tries again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            target_docker("rm", "-f", cid, sock=sock)
            return
        except RuntimeError as exc:
            if "No such container" in str(exc):
                return
            if "already in progress" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@contextlib.contextmanager
def serving(sock, cid, pid=None):
    """The committed copy serves: staged page files gone (through the container's own mount,
    never in the upper dir behind overlayfs's back), then every task resumed; yields a
    warning for what could not be tidied, or None, and frees the files' space on exit (the
    caller answers first). Their names go before the tasks resume; their blocks go at their
    last close, which is held past the answer: an eager restore leaves no one holding them,
    and freeing 1 GiB took the downtime 0.16 s. Safe to repeat. `pid`: the restored
    container's, when the restore just said it (no Docker round trip inside the downtime)."""
    if pid is None:
        pid = int(target_docker("inspect", "-f", "{{.State.Pid}}", cid, sock=sock))
    if pid <= 0:
        raise RuntimeError("the committed container has no process")
    warning, held = None, []
    staged = staged_dir(pid)
    try:
        if os.path.isdir(staged):
            held = _opened_files(staged)
            shutil.rmtree(staged)
    except OSError as exc:
        warning = f"staged pages: {exc}"
    try:
        resume_tasks(pid, cid)
        yield warning
    finally:
        for fd in held:
            os.close(fd)


def staged_dir(pid):
    """The staging dir, seen through the restored container's own root."""
    return f"/proc/{pid}/root/.wb"


def _opened_files(top):
    """An fd of each regular file under `top` (no link followed, nothing else opened: a
    FIFO would block)."""
    fds = []
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for where, _, names in os.walk(top):
        for name in names:
            try:
                fd = os.open(os.path.join(where, name), flags)
            except OSError:
                continue
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fds.append(fd)
            else:
                os.close(fd)
    return fds


def drop_checkpoint(sock, cid):
    """The checkpoint the copy was restored from, once it serves (only space: no error)."""
    with contextlib.suppress(RuntimeError):
        target_docker("checkpoint", "rm", cid, CHECKPOINT, sock=sock)
