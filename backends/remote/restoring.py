"""The final round's restore on the target, fenced, and lazy where asked and possible
(standard library only; lazy: lazypages.py)."""

import os
import time

from decision import abort_target
from lazypages import LAZY_DIR, LazyPages
from nodelib import criu_conf_with
from targetdir import CHECKPOINT, here, target_docker
from wire import failpoint

# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")


def restore(target, lazy=False):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit;
    with `lazy`, through a lazy-pages daemon filling them from the staged page files."""
    t0 = time.monotonic()
    options = RESTORE_OPTIONS
    daemon = None
    try:
        if lazy:
            daemon = LazyPages(os.path.join(here(), LAZY_DIR), target)
            options += ("lazy-pages", "work-dir " + daemon.work)
        with criu_conf_with(options):
            failpoint(target, "receiver.before-restore")
            target_docker("start", "--checkpoint", CHECKPOINT, target["container"])
        state = target_docker(
            "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", target["container"]
        )
        if not state.startswith("running"):
            raise RuntimeError(f"restored container is {state}")
    except RuntimeError as exc:
        abort_target(target["migration"], target["docker_socket"], target["container"])
        if daemon is not None:
            daemon.stop()
        raise RuntimeError(f"restore: {exc}") from None
    return {
        "restored": True,
        "restore_s": time.monotonic() - t0,
        "pid": int(state.split()[1]),
        "lazy": daemon is not None,
    }
