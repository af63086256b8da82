"""The final round's restore on the target, fenced (standard library only)."""

import time

from decision import abort_target
from nodelib import criu_conf_with
from targetdir import CHECKPOINT, target_docker
from wire import failpoint

# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")


def restore(target):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit."""
    t0 = time.monotonic()
    try:
        with criu_conf_with(RESTORE_OPTIONS):
            failpoint(target, "receiver.before-restore")
            target_docker("start", "--checkpoint", CHECKPOINT, target["container"])
        state = target_docker(
            "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", target["container"]
        )
    except RuntimeError as exc:
        abort_target(target["migration"], target["docker_socket"], target["container"])
        raise RuntimeError(f"restore: {exc}") from None
    if not state.startswith("running"):
        abort_target(target["migration"], target["docker_socket"], target["container"])
        raise RuntimeError(f"restored container is {state}")
    return {"restored": True, "restore_s": time.monotonic() - t0, "pid": int(state.split()[1])}
