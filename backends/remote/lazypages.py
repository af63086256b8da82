"""CRIU's lazy-pages daemon for one restore (standard library only).

Started first, it fills the restored process's private memory from the page files already
staged on this node, in the background and on the process's faults, so the restore no longer
copies the whole state in before it ends (CRIU's own test suite runs this mode: a plain dump,
`criu lazy-pages` reading local images, `restore --lazy-pages`). It is post-copy: were the
daemon to die before its fill ends, the pages it had not filled would read as zeros (the
userfaultfd goes with it), so it is asked for, never assumed (`--lazy-restore`), and nothing
ever kills a daemon that may be filling a restored copy.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time

LAZY_DIR = "lazy"  # in the link's private dir: the daemon's view of the images, its work dir


def lazy_unavailable():
    """None when this node can restore lazily, else why not (checked before the freeze)."""
    criu = shutil.which("criu")
    if criu is None:
        return "no criu on PATH"
    try:
        proc = subprocess.run(
            [criu, "check", "--feature", "uffd-noncoop"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"criu check: {exc}"
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return "criu check --feature uffd-noncoop: " + (said[-1] if said else "failed")
    return None


class LazyPages:
    """`criu lazy-pages` for one restore, started before it: it reads the images through a
    dir of its own, whose links resolve on the host (the checkpoint's page-file links resolve
    inside the container, where CRIU's restore opens them), and listens in its work dir, which
    runc.conf's `work-dir` points the restore at."""

    def __init__(self, root, target):
        shutil.rmtree(root, ignore_errors=True)
        self.images = os.path.join(root, "images")
        self.work = os.path.join(root, "work")
        os.makedirs(self.images, mode=0o700)
        os.makedirs(self.work, mode=0o700)
        staged = os.path.join(target["upper_dir"], ".wb")
        for name in os.listdir(target["checkpoint_dir"]):
            where = staged if name.startswith("pages-") else target["checkpoint_dir"]
            os.symlink(os.path.join(where, name), os.path.join(self.images, name))
        self.pidfile = os.path.join(self.work, "lazy-pages.pid")
        # -d: it returns once listening (the socket is bound before it forks), and its own
        # session outlives this script's, as its fill must.
        proc = subprocess.run(
            [
                "criu",
                "lazy-pages",
                "-d",
                "-D",
                self.images,
                "-W",
                self.work,
                "--pidfile",
                self.pidfile,
                "-o",
                "lazy-pages.log",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise RuntimeError("criu lazy-pages: " + lazy_log_tail(self.work, proc.stderr))

    def stop(self):
        """The daemon killed: only for a restore that failed (its pages are no one's now)."""
        pid = lazy_daemon(self.work)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def lazy_daemon(work):
    """The pid of the lazy-pages daemon whose work dir is `work`, while it runs."""
    try:
        with open(os.path.join(work, "lazy-pages.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"lazy-pages" in cmdline and work.encode() in cmdline else None


def lazy_log_tail(work, fallback=""):
    try:
        with open(os.path.join(work, "lazy-pages.log")) as f:
            lines = [line.strip() for line in f if "Error" in line or "error" in line]
    except OSError:
        lines = []
    return (lines[-1] if lines else fallback.strip() or "failed")[-300:]


def wait_lazy_fill(root, deadline_s):
    """Wait, up to `deadline_s`, for the daemon under `root` (a LAZY_DIR) to end its fill;
    True when none runs there any more."""
    work = os.path.join(root, "work")
    end = time.monotonic() + deadline_s
    while lazy_daemon(work):
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True
