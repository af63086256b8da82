"""whimbrel node helper for the SOURCE node of a migration (standard library only).

  probe-send BYTES LINKS        stream BYTES zero bytes over the link's stripes into the
                                receiver's sink; time them
  prepare MIG CID SOCK          lock the container (one migration at a time, held on this node),
                                make the migration's work dir, find runc's root and the
                                container's writable layer; prints them
  agent MIG CID LINK CFG        the migration's agent, a JSON line answering each line on stdin:
                                "round N" is pre-copy round N: `runc checkpoint --leave-running`
                                (a short freeze), then only the pages the target does not hold
                                yet, over sessions kept open from round to round (progress
                                lines every 0.5 s before its answer); "handover"
                                fires the final round. That runs DETACHED, in a daemon the agent
                                starts once round 0's sessions are ready (at "handover" if no
                                round comes), which opens its sessions and waits, armed: fired,
                                it freezes, dumps, sends, restores on the target, commits, and
                                on any failure resumes the source and undoes the target, even
                                if whimbrel dies meanwhile (its events go to MIG/handover.jsonl);
                                never fired (the agent ends first), it stands down
  follow MIG                    stream handover.jsonl until its end
  status MIG                    the hand-over's outcome, if any, and whether its daemon lives
  settle MIG CID VERDICT        carry out the target's recorded verdict on the source container
                                (committed: removed, never resumed; aborted: resumed), for a
                                hand-over whose daemon could not (see `recover` in the engine)
  ship-image MIG IMAGE LINK     `docker save` piped to the target's `docker load`
  release MIG CID               drop the lock and the work dir (after the outcome is known)

LINKS is a JSON list of ssh command lines, one per stripe (each on its own connection): a round
and the hand-over are striped streams, dealt over all of them (see receiver.py).

Where each part lives: workdirs.py (the lock, work dirs, the sweep), pagestream.py (a round's
images as a stream), transfer.py (the sessions to the receiver), runcdump.py (runc's dump),
agent.py (the rounds), progress.py (a round's progress lines), handover.py (the hand-over
daemon), outcome.py (follow, status, settle, release), wire.py (the stream's format), nodelib.py
(what every script shares).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from agent import agent
from nodelib import docker, fail, out
from outcome import follow, release, settle, status
from runcdump import find_runc_root
from transfer import Transfer, run_link
from wire import BLOCK
from workdirs import BASE, lock, prepared_info, private_base, unlock, workdir


def prepare(mig, cid, sock, failpoints="{}"):
    wd = workdir(mig)
    try:
        private_base()
        os.mkdir(wd, 0o700)
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    try:
        lock(mig, cid)
        runc_root = find_runc_root(cid)
        if runc_root is None:
            raise RuntimeError(f"runc state of container {cid[:12]} not found (is it running?)")
        inspect = json.loads(docker(sock, "inspect", cid))[0]
        upper = inspect["GraphDriver"]["Data"]["UpperDir"]
        volumes = {
            m["Name"]: m["Source"] for m in inspect.get("Mounts") or () if m["Type"] == "volume"
        }
        criu = subprocess.run(["criu", "--version"], capture_output=True, text=True).stdout
        soft_dirty = (
            subprocess.run(
                ["criu", "check", "--feature", "mem_dirty_track"], capture_output=True
            ).returncode
            == 0
        )
        prepared = {
            "runc_root": runc_root,
            "upper_dir": upper,
            "volumes": volumes,
            "failpoints": json.loads(failpoints),
            "docker_socket": sock,
            "criu": criu.split()[1] if criu else None,
            "soft_dirty": soft_dirty,
            "free_bytes": _free(BASE),
        }
        with open(os.path.join(wd, "prepare.json"), "w") as f:
            json.dump(prepared, f)
    except (RuntimeError, OSError, SystemExit) as exc:  # SystemExit: lock() refused, said why
        unlock(cid, mig)
        shutil.rmtree(wd, ignore_errors=True)
        if isinstance(exc, SystemExit):
            raise
        fail(str(exc))
    out(prepared)


def _free(path):
    st = os.statvfs(path if os.path.exists(path) else "/")
    return st.f_bavail * st.f_frsize


def probe_send(n_bytes, links_json):
    """BYTES zeros over every stripe into the receiver's sink, timed from its "ready" (every
    stripe connected) to its answer."""
    links = json.loads(links_json)
    transfer = Transfer(links, "sink")
    try:
        transfer.ready()
    except RuntimeError as exc:
        fail(str(exc))
    block = bytes(BLOCK)
    sent, n_bytes = 0, int(n_bytes)
    t0 = time.perf_counter()
    try:
        while sent < n_bytes:
            k = min(len(block), n_bytes - sent)
            transfer.stream.write(block[:k])
            sent += k
        transfer.stream.end()
    except BrokenPipeError:
        pass
    # The sink answers at the end frame, before the stripes' sessions end.
    answer = transfer.session.stdout.readline()
    elapsed = time.perf_counter() - t0
    stripe_error = transfer.close()
    transfer.session.wait()
    try:
        received = json.loads(answer)["bytes"]
    except (ValueError, KeyError):
        fail(f"receiver said {answer[:200]!r}")
    if stripe_error:
        fail(stripe_error)
    out({"bytes": received, "elapsed_s": elapsed, "stripes": len(links)})


def ship_image(mig, image, link_json):
    """`docker save` here, `docker load` there, straight over the link."""
    sock = prepared_info(workdir(mig))["docker_socket"]

    def feed(stream):
        proc = subprocess.Popen(
            ["docker", "-H", "unix://" + sock, "save", image], stdout=subprocess.PIPE
        )
        total = 0
        while chunk := proc.stdout.read(1 << 20):
            stream.write(chunk)
            total += len(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"docker save {image} failed")
        return total

    try:
        total, _ = run_link(json.loads(link_json), "load-image", feed)  # once: not striped
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    out({"bytes": total})


if __name__ == "__main__":
    actions = {
        "prepare": prepare,
        "agent": agent,
        "follow": follow,
        "status": status,
        "settle": settle,
        "release": release,
        "ship-image": ship_image,
        "probe-send": probe_send,
    }
    actions[sys.argv[1]](*sys.argv[2:])
