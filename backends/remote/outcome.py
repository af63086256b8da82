"""What became of a migration's hand-over, for the engine and `recover` (standard library
only): its log followed, its status, its verdict carried out when its daemon could not, and
the migration released.
"""

import json
import os
import shutil
import sys
import time

from handover import Events, remove_source, resumed
from nodelib import fail, out
from workdirs import daemon_alive, prepared_info, read_json, unlock, workdir, write_json


def settle(mig, cid, verdict):
    """Carry out the target's verdict on the source container, for a hand-over its daemon left
    unsettled (or a daemon that died); the outcome is written as the daemon would have."""
    wd = workdir(mig)
    prepared = prepared_info(wd)
    sock = prepared["docker_socket"]
    emit = Events(wd)
    if verdict == "committed":
        keep = read_json(os.path.join(wd, "handover.cfg"), {}).get("keep_source")
        # Failpoints armed for the migration are not recovery's: none here.
        if not remove_source({}, sock, cid, keep, emit):
            fail("the source container could not be removed")
        outcome = {"ok": True, "running_on": "target", "settled": True}
    elif verdict == "aborted":
        outcome = resumed(sock, cid, emit, "settled: the target recorded aborted", None)
    else:
        fail(f"bad verdict {verdict!r}")
    write_json(os.path.join(wd, "handover.json"), outcome)
    out({"outcome": outcome})


def _await_handover(mig, timeout=60):
    """Wait for the migration's hand-over daemon to end (one standing down writes its outcome
    into the work dir as it goes): nothing of the migration may outlive its release."""
    deadline = time.monotonic() + timeout
    while daemon_alive(mig) and time.monotonic() < deadline:
        time.sleep(0.05)


def follow(mig):
    """Stream handover.jsonl to its end; a daemon that died before writing its end gets one
    written for it here (its outcome unsettled: the target's record decides)."""
    path = os.path.join(workdir(mig), "handover.jsonl")
    pos = 0
    last = "fired"
    while True:
        alive = daemon_alive(mig)  # before reading: a line written after this is read too
        try:
            with open(path) as f:
                f.seek(pos)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    pos += len(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    last = json.loads(line).get("kind", last)
                    if last == "end":
                        return
        except FileNotFoundError:
            pass
        if not alive:
            out(
                {
                    "kind": "end",
                    "ok": False,
                    "running_on": "unknown",
                    "unsettled": True,
                    "error": f"the hand-over daemon died (its last step: {last})",
                }
            )
            return
        time.sleep(0.05)


def status(mig):
    wd = workdir(mig)
    out(
        {
            "outcome": read_json(os.path.join(wd, "handover.json"), None),
            "workdir": os.path.isdir(wd),
            "daemon": daemon_alive(mig),
        }
    )


def release(mig, cid):
    _await_handover(mig)
    unlock(cid, mig)
    shutil.rmtree(workdir(mig), ignore_errors=True)
    out({"released": mig})
