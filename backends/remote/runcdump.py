"""A container's CRIU dump through runc, and CRIU's network lock lifted after a failed one
(standard library only)."""

import glob
import os
import shutil
import subprocess
import time

from landing import PagesAsTheyLand
from nodelib import criu_conf_with
from workdirs import prepared_info, workdir

RUNC = "runc"
# CRIU options of a whimbrel dump: a connection the container had not accepted yet when it was
# frozen (in a listening socket's queue) is left behind instead of failing the dump; its
# client never had an answer, and connects again.
DUMP_OPTIONS = ("skip-in-flight",)


def find_runc_root(cid):
    """Docker runs runc with --root EXEC_ROOT/runtime-runc/moby; find the one holding cid."""
    for pattern in (
        "/run/docker/runtime-runc/moby",
        "/var/run/docker/runtime-runc/moby",
        "/run/*/runtime-runc/moby",
        "/run/*/*/runtime-runc/moby",
        "/run/*/*/*/runtime-runc/moby",
    ):
        for root in glob.glob(pattern):
            if os.path.exists(os.path.join(root, cid, "state.json")):
                return root
    return None


def dump(mig, cid, leave_running, dirname, on_target=None, sink=None):
    """runc's checkpoint into the work dir's `dirname`: (its path, CRIU's seconds, and given
    `on_target` (pagestream.OnTarget) what following its page files as they landed came to,
    landing.Landed, else None). With `sink`, the stream to the target, the changed pages go
    ahead on it while CRIU still writes."""
    wd = workdir(mig)
    prepared = prepared_info(wd)
    img = os.path.join(wd, dirname)
    work = img + ".work"
    shutil.rmtree(img, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    argv = [
        RUNC,
        "--root",
        prepared["runc_root"],
        "checkpoint",
        "--tcp-established",
        "--image-path",
        img,
        "--work-path",
        work,
    ]
    if leave_running:
        argv.append("--leave-running")
    if ("criu.dump-final" if dirname == "final" else "criu.dump-round") in prepared["failpoints"]:
        # A real CRIU failure mid-dump: the pages are to go to a page server nobody runs.
        argv += ["--page-server", "127.0.0.1:9"]
    following = PagesAsTheyLand(img, on_target, sink) if on_target and on_target.held else None
    try:
        with criu_conf_with(DUMP_OPTIONS):  # never with a restore's, which stop the source
            t0 = time.monotonic()
            proc = subprocess.run([*argv, cid], capture_output=True, text=True, timeout=600)
            elapsed = time.monotonic() - t0
    finally:
        landed = following.finish() if following else None
    if proc.returncode != 0:
        log = ""
        try:
            with open(os.path.join(work, "dump.log")) as f:
                log = " / ".join(line.strip() for line in f.readlines()[-3:])
        except OSError:
            pass
        clear_criu_lock()
        raise RuntimeError(f"CRIU dump failed: {proc.stderr.strip()[-200:]} {log}")
    return img, elapsed, landed


def clear_criu_lock():
    """CRIU's network lock must never outlive a failed dump: it black-holes the node (with
    host networking, its sshd too). Its iptables chain is one per network namespace, shared
    by every dump in it, so it is left alone while another CRIU runs here: that one's lock is
    live, and it lifts it itself."""
    if _other_criu_here():
        return
    for tool in ("iptables", "ip6tables"):
        rules = subprocess.run([tool, "-S"], capture_output=True, text=True).stdout
        for chain in ("INPUT", "OUTPUT"):
            if "-j CRIU" in rules:
                subprocess.run([tool, "-D", chain, "-j", "CRIU"], capture_output=True)
        if "-N CRIU" in rules:
            subprocess.run([tool, "-F", "CRIU"], capture_output=True)
            subprocess.run([tool, "-X", "CRIU"], capture_output=True)
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    for line in tables.splitlines():
        if "CRIU" in line:
            subprocess.run(["nft", "delete", "table", *line.split()[1:]], capture_output=True)


def _other_criu_here():
    """Is a CRIU process running in this network namespace?"""
    ours = os.stat("/proc/self/ns/net").st_ino
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "criu":
                    continue
            if os.stat(f"/proc/{pid}/ns/net").st_ino == ours:
                return True
        except OSError:
            continue
    return False
