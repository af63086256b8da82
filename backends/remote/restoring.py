"""The final round's restore on the target, fenced, and lazy where asked and possible
(standard library only; CRIU's work dir and the lazy-pages daemon: restorework.py)."""

import subprocess
import time

from engineapi import ask_engine, container_url
from nodelib import criu_conf_with
from restorework import criu_error, criu_restore_s, restore_begins
from targetdir import CHECKPOINT
from wire import failpoint

# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")
# An eager restore copies the whole state in before Docker's start returns.
START_TIMEOUT_S = 300


def restore(target, work, daemon=None):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit;
    CRIU's work dir is `work`; with `daemon` (restorework.LazyDaemon), lazily, the daemon
    filling them from the staged page files. A restore that fails takes its daemon with it;
    the copy is the caller's to refuse (receiving.recv)."""
    t0 = time.monotonic()
    sock, cid = target["docker_socket"], target["container"]
    options = (*RESTORE_OPTIONS, "work-dir " + work) + (("lazy-pages",) if daemon else ())
    try:
        if daemon:
            daemon.ready()
        with criu_conf_with(options):
            failpoint(target, "receiver.before-restore")
            restore_begins(work)
            try:
                url = container_url(cid, "start") + "?checkpoint=" + CHECKPOINT
                ask_engine(sock, "POST", url, timeout=START_TIMEOUT_S)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} (criu: {criu_error(work, 'restore.log')})") from None
        state = ask_engine(sock, "GET", container_url(cid, "json"))["State"]
        if state["Status"] != "running":
            raise RuntimeError(f"restored container is {state['Status']}")
    except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, TypeError) as exc:
        if daemon:
            daemon.kill()  # fills nothing now; waiting on for a restore, it would stay
        raise RuntimeError(f"restore: {exc}") from None
    return {
        "restored": True,
        "restore_s": time.monotonic() - t0,
        "criu_restore_s": criu_restore_s(work),
        "pid": int(state["Pid"]),
        "lazy": daemon is not None,
    }
