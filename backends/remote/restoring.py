"""The final round's restore on the target, fenced, and lazy where asked and possible
(standard library only; CRIU's work dir and the lazy-pages daemon: restorework.py)."""

import subprocess
import time

from decision import abort_target
from nodelib import criu_conf_with
from restorework import (
    criu_error,
    criu_restore_s,
    kill_lazy_daemon,
    restore_dirs,
    start_lazy_daemon,
)
from targetdir import CHECKPOINT, here, target_docker
from wire import failpoint

# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")


def restore(target, lazy=False):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit;
    with `lazy`, through a lazy-pages daemon filling them from the staged page files."""
    t0 = time.monotonic()
    work, images = restore_dirs(here())
    options = (*RESTORE_OPTIONS, "work-dir " + work) + (("lazy-pages",) if lazy else ())
    try:
        if lazy:
            start_lazy_daemon(work, images, target)
        with criu_conf_with(options):
            failpoint(target, "receiver.before-restore")
            try:
                target_docker("start", "--checkpoint", CHECKPOINT, target["container"])
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} (criu: {criu_error(work, 'restore.log')})") from None
        state = target_docker(
            "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", target["container"]
        )
        if not state.startswith("running"):
            raise RuntimeError(f"restored container is {state}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        abort_target(target["migration"], target["docker_socket"], target["container"])
        kill_lazy_daemon(work)  # fills nothing now; waiting on for a restore, it would stay
        raise RuntimeError(f"restore: {exc}") from None
    return {
        "restored": True,
        "restore_s": time.monotonic() - t0,
        "criu_restore_s": criu_restore_s(work),
        "pid": int(state.split()[1]),
        "lazy": lazy,
    }
