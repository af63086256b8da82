"""CRIU's work dir for a restore, and the lazy-pages daemon a lazy restore adds (standard
library only).

Whimbrel names the restore's work dir (runc.conf's `work-dir`), so that CRIU's restore.log is
its to read: CRIU's own time and its error. A lazy-pages daemon, started before the restore
(while the final round's page files still arrive), fills the restored process's private
memory from the page files staged on this node, in the background and on the process's
faults, so the restore no longer copies the whole state in before it ends (CRIU's own test
suite runs this mode: a plain dump, `criu lazy-pages` reading local images, `restore
--lazy-pages`). It is post-copy: were the daemon to die before its fill ends, the pages it
had not filled would read as zeros (the userfaultfd goes with it), so it is asked for, never
assumed (`--lazy-restore`), and nothing ever kills a daemon that may be filling a restored
copy (one whose restore never began fills nothing: that one is killed).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time

# In the link's private dir: CRIU's work dir for the restore (its restore.log; the daemon's
# socket and log), and the daemon's view of the images.
RESTORE_DIR = "restore"
PIDFILE = "lazy-pages.pid"
# In the work dir, written just before the restore is asked for: a daemon running without it
# serves no restore (its receiver died before) and fills nothing.
BEGUN = "restore.begun"


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


def restore_dirs(root):
    """A fresh RESTORE_DIR under `root`: (work dir, images dir)."""
    dirs = os.path.join(root, RESTORE_DIR, "work"), os.path.join(root, RESTORE_DIR, "images")
    shutil.rmtree(os.path.dirname(dirs[0]), ignore_errors=True)
    for path in dirs:
        os.makedirs(path, mode=0o700)
    return dirs


class LazyDaemon:
    """`criu lazy-pages` for one restore. It reads the process tree when it starts and the
    page files only once the restore connects, so it is started as soon as the final round's
    other images have landed (`start`): its start (~25 ms) overlaps what is left of the page
    files' arrival (5-10 ms of it at a 1 MB residual on the lab). It reads the images through
    a dir of its own (`images`), whose links resolve on the host (the checkpoint's page-file
    links resolve inside the container, where CRIU's restore opens them), and listens in the
    restore's work dir (`work`, where runc.conf's `work-dir` points the restore)."""

    def __init__(self, work, images, target):
        self.work, self.images, self.target = work, images, target
        self.proc = None

    def start(self):
        self._link()
        # -d: it returns once listening (the socket is bound before it forks), and its own
        # session outlives this script's, as its fill must. -v4: its fill's summary (lazy_fill)
        # is a debug line.
        argv = ["criu", "lazy-pages", "-d", "-D", self.images, "-W", self.work]
        argv += ["-o", "lazy-pages.log", "-v4", "--pidfile", os.path.join(self.work, PIDFILE)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def ready(self):
        """Every image linked and the daemon listening (started now if it was not), or
        RuntimeError saying why not."""
        self._link()
        if self.proc is None:
            self.start()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("criu lazy-pages: not listening after 30 s") from None
        if self.proc.returncode != 0:
            said = criu_error(self.work, "lazy-pages.log", err.decode(errors="replace"))
            raise RuntimeError(f"criu lazy-pages: {said}")

    def kill(self):
        """Gone, for a restore that failed or never began (its pages are no one's)."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)  # its pidfile is written once it listens
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        kill_lazy_daemon(self.work)

    def _link(self):
        staged = os.path.join(self.target["upper_dir"], ".wb")
        for name in os.listdir(self.target["checkpoint_dir"]):
            link = os.path.join(self.images, name)
            if not os.path.lexists(link):
                where = staged if name.startswith("pages-") else self.target["checkpoint_dir"]
                os.symlink(os.path.join(where, name), link)


def kill_lazy_daemon(work):
    """The daemon of the restore in `work` killed, if one runs: only for a restore that
    failed or never began (its pages are no one's now)."""
    pid = lazy_daemon(work)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def lazy_daemon(work):
    """The pid of the lazy-pages daemon whose work dir is `work`, while it runs."""
    try:
        with open(os.path.join(work, PIDFILE)) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"lazy-pages" in cmdline and work.encode() in cmdline else None


def criu_error(work, log, fallback=""):
    """CRIU's errors in `log` of its work dir, in order, each once (up to 6): which one is
    the cause is not always the first (some it logs and goes on from, as a limit it could
    not raise) nor the last (cgroupd's "recv req error" follows any failed restore); else
    `fallback`."""
    try:
        with open(os.path.join(work, log), errors="replace") as f:
            # CRIU's errors all say "Error" ("Error (file:line): ..."); a lower-case
            # "error" is a word of an ordinary line (a library it collected: libgpg-error).
            lines = [line.strip() for line in f if "Error" in line]
    except OSError:
        lines = []
    if not lines:
        return (fallback.strip() or "failed")[-300:]
    said = list(dict.fromkeys(line[-240:] for line in lines))
    more = f" | (and {len(said) - 6} more)" if len(said) > 6 else ""
    return " | ".join(said[:6]) + more


def criu_restore_s(work):
    """How long CRIU's own restore took, from the last timestamp of its restore.log (each
    line starts "(SS.ffffff)", seconds since CRIU began), or None."""
    try:
        with open(os.path.join(work, "restore.log"), errors="replace") as f:
            stamps = [line[1:10] for line in f if line.startswith("(") and line[10:11] == ")"]
        return float(stamps[-1]) if stamps else None
    except (OSError, ValueError):
        return None


def lazy_fill(root):
    """What the lazy-pages daemon of a restore under `root` said of its fill once it ended:
    {"fill_s": seconds from the restore's first task reaching it ("Received PID") to its last
    task's summary, "pages": filled, "of": its pages}, or None (no lazy restore there, or no
    summary). (From the daemon's own start it would count the page files' arrival too: it
    starts while they come.)"""
    filled = total = 0
    connected = end = None
    try:
        with open(os.path.join(root, RESTORE_DIR, "work", "lazy-pages.log"), errors="replace") as f:
            for line in f:
                if not line.startswith("("):
                    continue
                if "Received PID: " in line and connected is None:
                    connected = float(line[1:].split(")")[0])
                elif "UFFD transferred pages: (" in line:
                    done, of = line.rsplit("(", 1)[1].split(")")[0].split("/")
                    filled, total = filled + int(done), total + int(of)
                    end = float(line[1:].split(")")[0])
    except (OSError, ValueError, IndexError):
        return None
    if end is None:
        return None
    return {"fill_s": end - (connected or 0.0), "pages": filled, "of": total}


def restore_begins(work):
    """Said just before the restore in `work` is asked for (see BEGUN)."""
    with open(os.path.join(work, BEGUN), "w"):
        pass


def wait_lazy_fill(root, deadline_s):
    """Wait, up to `deadline_s`, for a lazy-pages daemon of a restore under `root` to end its
    fill; True when none runs there any more. A daemon whose restore never began is killed
    first: it fills nothing, and would wait for a restore for ever."""
    work = os.path.join(root, RESTORE_DIR, "work")
    if not os.path.exists(os.path.join(work, BEGUN)):
        kill_lazy_daemon(work)
    end = time.monotonic() + deadline_s
    while lazy_daemon(work):
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True
