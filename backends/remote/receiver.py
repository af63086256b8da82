"""whimbrel node helper: the receiving end of a node-to-node link (standard library only).

It is the forced command of the ephemeral key that whimbrel installs on the TARGET node for one
migration or probe, so the source node can run this and nothing else. What the source asked
for arrives in SSH_ORIGINAL_COMMAND and is parsed here, never handed to a shell. The operator
writes target.json beside this script (the migration, the target container, its Docker socket,
upper dir and checkpoint dir): the source cannot choose where anything is written.

The commit point: DECISIONS/MIG/decision, one record on this node, written once (temp, fsync,
link: the first verdict stands) and read by everyone who acts: this receiver, the source's
hand-over daemon (through `settle`) and the operator's recovery (running this script as
`python3 - ACTION ARGS` over its own SSH session). Before a "committed" record the restored
copy is fenced: CRIU leaves its tasks stopped, so no client is ever answered by a copy that
may yet be undone; the record written, it is resumed and never undone.

  sink K T      read a striped stream (below) to its end; answer {"bytes": N, "elapsed_s": S}
  rounds K T    the pre-copy rounds' CRIU images (see source.py for the stream), one striped
                stream per round over the same sessions, round N into /.wb/round-N/ (below),
                each answered {"round": N, ...}; the session ends when the source ends it
  recv final K T
                opened before the final round is due (the source stands down by closing it
                unused), the final round's images (and the writable layer, into the upper
                dir), where `docker start --checkpoint` restores from, with the page files
                staged inside the target container's own root file system (/.wb), which
                makes the restore 5x faster (LAB-FACTS.md); then, in the same session:
                `docker start --checkpoint`, fenced (below), answer, then wait up to
                COMMIT_WAIT_S for the source's "commit" line and record the verdict:
                committed, the staged files go and the copy serves; anything else, a lost
                source or silence, records "aborted" and the copy goes
  load-image    `docker load` what comes on stdin (the source's `docker save`)
  settle        record "aborted" unless a verdict stands; then act on the verdict that stands:
                aborted, the target container goes; committed, it is made to serve (both
                idempotent); answer {"decision": ...}. The source's way to learn the outcome
                when the final round's session was lost
  status        the verdict recorded, or "pending"
  stripe T I    stripe I (1..K-1) of the striped stream T: this session's stdin, relayed into
                the socket of the session (sink, rounds or recv) that reassembles the stream

Striped streams: one SSH channel moves at most its window (about 2 MB) per round trip, so the
source deals the stream in frames (4-byte length, then that many bytes; a zero length ends the
stream) round-robin over K sessions, each on its own connection: frame i travels on stripe
i % K, stripe 0 being the receiving session's own stdin. T names the stream, so a stripe can
never join another stream's session.

Run by the operator (argv instead of SSH_ORIGINAL_COMMAND):
  expect MIG              a migration is coming: its decision dir made
  settle MIG SOCK CID     as above, for container CID on the Docker socket SOCK
  forget MIG              drop the decision dir once every party has acted on it
"""

import contextlib
import fcntl
import io
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

CHECKPOINT = "whimbrel"
MAX_STRIPES = 16  # a sanity bound on what a source may ask for (whimbrel uses 8 at most)
FRAME_LIMIT = 1 << 24
DECISIONS = "/var/lib/whimbrel/decisions"
# How long a restored, fenced copy waits for the source's "commit" before it records "aborted"
# and goes: the source sends it a round trip after the restore's answer.
COMMIT_WAIT_S = 30.0
CRIU_CONF = "/etc/criu/runc.conf"
CRIU_CONF_SAVED = CRIU_CONF + ".whimbrel-saved"
CRIU_CONF_LOCK = "/run/whimbrel/criu-conf.lock"
# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")


def here():
    """The link's private dir, where the operator put this script and target.json."""
    return os.path.dirname(os.path.abspath(__file__))


def out(obj):
    print(json.dumps(obj), flush=True)


def fail(message):
    out({"error": message})
    sys.exit(1)


def target():
    with open(os.path.join(here(), "target.json")) as f:
        return json.load(f)


def docker(*args, sock=None):
    proc = subprocess.run(
        ["docker", "-H", "unix://" + (sock or target()["docker_socket"]), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def failpoint(t, name):
    """A failure armed by whimbrel's own tests (WHIMBREL_FAILPOINTS; inert otherwise): see
    backends/failpoints.py for the names and what each action does."""
    action = t.get("failpoints", {}).get(name)
    if action is None:
        return
    if action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise RuntimeError(f"failpoint {name}")


# ------------------------------------------------------------------ the commit point


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
    _sync_dir(path)
    return recorded(mig)


def _sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def expect(mig):
    """Run by the operator before it makes the target container: the decision dir, without
    which nothing can be decided for `mig` here."""
    os.makedirs(DECISIONS, mode=0o700, exist_ok=True)
    os.mkdir(_decision_dir(mig), 0o700)
    _sync_dir(DECISIONS)
    out({"expecting": mig})


def forget(mig):
    shutil.rmtree(_decision_dir(mig), ignore_errors=True)
    out({"forgotten": mig})


def settle(mig=None, sock=None, cid=None):
    """Abort unless committed, then carry out the verdict that stands (see the module doc)."""
    if mig is None:  # over the link: this migration's own target, from the operator's file
        t = target()
        mig, sock, cid = t["migration"], t["docker_socket"], t["container"]
    verdict = abort_target(mig, sock, cid)
    answer = {"decision": verdict}
    if verdict == "committed":
        warning = serve(sock, cid)
        if warning:
            answer["warning"] = warning
    out(answer)


def abort_target(mig, sock, cid):
    """Record "aborted" unless a verdict stands; the target container goes only if that is the
    verdict (never for "committed", nor for a migration no longer expected here)."""
    verdict = decide(mig, "aborted")
    if verdict == "aborted":
        with contextlib.suppress(RuntimeError):  # already gone
            docker("rm", "-f", cid, sock=sock)
    return verdict


def serve(sock, cid):
    """The committed copy serves: staged page files gone (through the container's own mount,
    never in the upper dir behind overlayfs's back), then every task resumed. Safe to repeat;
    returns a warning for what could not be tidied, or None."""
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", cid, sock=sock))
    if pid <= 0:
        raise RuntimeError("the committed container has no process")
    warning = None
    staged = f"/proc/{pid}/root/.wb"
    try:
        if os.path.isdir(staged):
            shutil.rmtree(staged)
    except OSError as exc:
        warning = f"staged pages: {exc}"
    _resume_tasks(pid, cid)
    with contextlib.suppress(RuntimeError):  # once served, only space: a warning at most
        docker("checkpoint", "rm", cid, CHECKPOINT, sock=sock)
    return warning


def _resume_tasks(pid, cid):
    """SIGCONT every process in the container's cgroups (CRIU's leave-stopped stopped them
    all); a process is found by its cgroup set, which names the container."""
    with open(f"/proc/{pid}/cgroup") as f:
        cgroups = f.read()
    pids = {pid}
    if cid in cgroups:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/cgroup") as f:
                    if f.read() == cgroups:
                        pids.add(int(entry))
    for task in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(task, signal.SIGCONT)


def sink(k, token):
    stream = joined(k, token)
    total = 0
    t0 = None
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        if t0 is None:
            t0 = time.perf_counter()
        total += len(chunk)
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    out({"bytes": total, "elapsed_s": elapsed})


def _stripe_socket(token):
    if not (token.isalnum() and len(token) <= 32):
        raise ValueError("bad stream token")
    return os.path.join(here(), f"stripes-{token}.sock")


class Joined:
    """The frames of a striped stream read back in order: a reader whose read(n) returns n
    bytes, or fewer only at the stream's end. (Each frame is served from a BytesIO: the
    receiver reads many small fields, and those stay C-fast.)"""

    def __init__(self, stripes):
        self.stripes = stripes
        self.count = 0
        self.block = io.BytesIO()
        self.ended = False

    def read(self, n):
        data = self.block.read(n)
        if len(data) == n:
            return data
        parts = [data]
        n -= len(data)
        while n > 0 and self._next():
            chunk = self.block.read(n)
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def finish(self):
        """Read the end frame: whatever the session reads next (the final round's "commit",
        on stdin) comes after the stream, not inside it."""
        if self.block.read(1) or self._next():
            raise ValueError("data after the end of the stream")

    def more(self):
        """Begin the session's next stream (after an end frame): False when the source ends
        the session there instead (every stripe at EOF)."""
        self.ended = False
        index = self.count % len(self.stripes)
        head = self.stripes[index].read(4)
        if not head:
            return False
        return self._frame(index, head)

    def _next(self):
        if self.ended:
            return False
        index = self.count % len(self.stripes)
        return self._frame(index, _read(self.stripes[index], 4, f"stripe {index}"))

    def _frame(self, index, head):
        if len(head) != 4:
            raise EOFError(f"stripe {index} ended early")
        stripe = self.stripes[index]
        (n,) = struct.unpack(">I", head)
        if n == 0:
            self.ended = True
            return False
        if n > FRAME_LIMIT:
            raise ValueError(f"stripe {index}: frame of {n} bytes")
        self.block = io.BytesIO(_read(stripe, n, f"stripe {index}"))
        self.count += 1
        return True


def joined(k, token):
    """This session's stdin and the k-1 `stripe` sessions of stream `token`, joined; then
    "ready" to the source, which sends (or freezes the container) only after it."""
    k = int(k)
    if not 1 <= k <= MAX_STRIPES:
        raise ValueError(f"bad stripe count {k}")
    stripes = [sys.stdin.buffer] + [None] * (k - 1)
    if k > 1:
        _accept(stripes, _stripe_socket(token))
    print("ready", flush=True)
    return Joined(stripes)


def _accept(stripes, path):
    """Fill `stripes` with the stripe sessions that connect to `path`."""
    k = len(stripes)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(k)
        listener.settimeout(60)  # the stripes start with this session: a minute is plenty
        while None in stripes:
            conn, _ = listener.accept()
            conn.settimeout(10)
            index = conn.recv(1)
            conn.settimeout(None)
            if not index or not 1 <= index[0] < k or stripes[index[0]] is not None:
                raise ValueError(f"bad stripe {index!r}")
            stripes[index[0]] = conn.makefile("rb")
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def stripe(token, index):
    """Relay this session's stdin to the session reassembling stream `token`."""
    path = _stripe_socket(token)
    index = int(index)
    if not 1 <= index < MAX_STRIPES:
        raise ValueError(f"bad stripe {index}")
    deadline = time.monotonic() + 60
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            conn.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise RuntimeError("no session is receiving this stream") from None
            time.sleep(0.01)
    conn.sendall(bytes([index]))
    stdin = sys.stdin.buffer
    while chunk := stdin.read1(1 << 20):
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
    out({"stripe": index})


def _read(stream, n, what="stream"):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"{what} ended early")
    return data


def _ref(stream):
    (n,) = struct.unpack(">H", _read(stream, 2))
    name = _read(stream, n).decode()
    if "/" in name or name.startswith("."):
        raise ValueError("bad file name")
    offset, length = struct.unpack(">QQ", _read(stream, 16))
    return name, offset, length


def _copy(src_path, offset, length, dst):
    with open(src_path, "rb") as src:
        src.seek(offset)
        while length:
            chunk = src.read(min(length, 1 << 22))
            if not chunk:
                raise EOFError("short copy from " + src_path)
            dst.write(chunk)
            length -= len(chunk)


def rounds(k, token):
    """The pre-copy rounds, one stream each over the same sessions, answered one by one: the
    sessions and this script start once for all the rounds, not once a round."""
    t = target()
    stream = joined(k, token)
    number = 0
    while stream.more():
        prev = _latest_round()
        out_dir = os.path.join(_staging(t), f"round-{number}")
        os.makedirs(out_dir, mode=0o700, exist_ok=True)
        received, files = _receive(stream, t, prev, out_dir, out_dir, final=False)
        _latest(prev, out_dir)
        out({"round": number, "received_bytes": received, "files": files})
        number += 1


def _staging(t):
    """/.wb in the target container's root file system: the page files of the final round
    are staged there (CRIU opens them from inside the container), and the rounds' (round-N/)
    too, so the final round takes the last round's page files by a rename. From a round kept
    in this script's dir (another mount, even where it is the same file system, as beside
    Docker's data root in the lab) that was a copy of the whole state inside the downtime:
    1.5 s at 1 GiB. Made root's alone: the images are the container's memory, and the
    container's own users see its root file system."""
    staging = os.path.join(t["upper_dir"], ".wb")
    os.makedirs(staging, mode=0o700, exist_ok=True)
    return staging


def _latest(prev, out_dir):
    """Make out_dir the round the next one builds on; the one before is no longer needed."""
    if prev is not None and prev != out_dir:
        shutil.rmtree(prev, ignore_errors=True)
    with open(os.path.join(here(), "latest"), "w") as f:
        f.write(out_dir)


def recv(which, k, token):
    """The final round's images (and the writable layer, as the file "@layer"), restored where
    `docker start --checkpoint` looks for them. The final round goes on in this session:
    restore, answer, and keep the restored container only if the source then says commit; a
    lost source (EOF) undoes it."""
    if which != "final":
        raise ValueError(f"recv {which!r}: pre-copy rounds go over `rounds`")
    t = target()
    out_dir, pages_dir = t["checkpoint_dir"], _staging(t)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    stream = joined(k, token)
    # The source opens this session armed, while the pre-copy rounds still run: the round to
    # build on is the last one, known once the final round's data begins.
    if not stream.more():
        out({"stood_down": True})
        return
    received, files = _receive(stream, t, _latest_round(), out_dir, pages_dir, final=True)
    if "corrupt-image" in t.get("failpoints", {}):
        with open(os.path.join(out_dir, "inventory.img"), "r+b") as f:
            f.write(b"\xff" * 16)
    restored = restore(t)
    out(dict(restored, received_bytes=received, files=files))
    word = _line_within(COMMIT_WAIT_S)
    failpoint(t, "receiver.before-commit-record")
    if word == b"commit":
        verdict = decide(t["migration"], "committed")
    else:
        verdict = abort_target(t["migration"], t["docker_socket"], t["container"])
    if verdict != "committed":
        why = "recorded before the commit came" if word == b"commit" else "no commit in time"
        out({"committed": False, "decision": verdict, "why": f"{verdict}: {why}"})
        return
    warning = serve(t["docker_socket"], t["container"])
    failpoint(t, "receiver.after-commit")
    out({"committed": True, **({"warning": warning} if warning else {})})


def _line_within(seconds):
    """The session's next line, or None when none comes within `seconds` (a source gone
    quiet, not only one gone: a partition can hold a session open without a word)."""
    box = []
    reader = threading.Thread(
        target=lambda: box.append(sys.stdin.buffer.readline().strip()), daemon=True
    )
    reader.start()
    reader.join(seconds)
    return box[0] if box else None


def _receive(stream, t, prev, out_dir, pages_dir, final):
    """One round's stream into out_dir (page files into pages_dir), built on round `prev`;
    returns (bytes received, files)."""
    received = files = 0
    while True:
        (n,) = struct.unpack(">I", _read(stream, 4))
        if n == 0:
            break
        header = json.loads(_read(stream, n))
        name = header["name"]
        if name == "@layer":
            received += _receive_tree(stream, t["upper_dir"], keep=".wb")
            continue
        if name.startswith("@volume:"):
            volume = name.split(":", 1)[1]
            if volume not in t["volumes"]:
                raise ValueError(f"volume {volume!r} is not the target container's")
            received += _receive_tree(stream, t["volumes"][volume])
            continue
        if "/" in name or name.startswith("."):
            raise ValueError("bad file name")
        is_pages = name.startswith("pages-")
        path = os.path.join(pages_dir if is_pages else out_dir, name)
        if header.get("inplace") and prev is not None:
            received += _patch_file(stream, os.path.join(prev, name), path)
        else:
            with open(path, "wb") as f:
                received += _receive_file(stream, f, prev, pages_dir, out_dir)
        if is_pages and final:
            # CRIU opens page files inside the container's mount namespace: a link to a path
            # that resolves there, not on the host.
            os.symlink("/.wb/" + name, os.path.join(out_dir, name))
        files += 1
    stream.finish()
    return received, files


def _chunks(stream):
    """The D chunks of one file up to its E; P and C ops are handed back to the caller."""
    while True:
        op = _read(stream, 1)
        if op == b"E":
            return
        if op == b"D":
            (length,) = struct.unpack(">Q", _read(stream, 8))
            while length:
                chunk = stream.read(min(length, 1 << 20))
                if not chunk:
                    raise EOFError("stream ended in data")
                length -= len(chunk)
                yield op, chunk
        elif op in (b"P", b"C"):
            yield op, _ref(stream)
        else:
            raise ValueError(f"bad op {op!r}")


def _receive_file(stream, f, prev, pages_dir, out_dir):
    received = 0
    for op, item in _chunks(stream):
        if op == b"D":
            f.write(item)
            received += len(item)
        elif op == b"P":
            if prev is None:
                raise ValueError("copy from a previous round that is not here")
            _copy(os.path.join(prev, item[0]), item[1], item[2], f)
        else:
            f.flush()
            src_dir = pages_dir if item[0].startswith("pages-") else out_dir
            _copy(os.path.join(src_dir, item[0]), item[1], item[2], f)
    return received


def _patch_file(stream, old, path):
    """Last round's file becomes this round's, patched where pages changed (the source only
    asks for this when every page it keeps is at the same offset)."""
    try:
        os.replace(old, path)
    except OSError:  # another file system: copy instead
        shutil.copyfile(old, path)
    received = 0
    with open(path, "r+b") as f:
        for op, item in _chunks(stream):
            if op == b"D":
                f.write(item)
                received += len(item)
            elif op == b"P" and item[1] == f.tell():
                f.seek(item[2], os.SEEK_CUR)
            else:
                raise ValueError("not an in-place patch")
        f.truncate()
    return received


def _receive_tree(stream, root, keep=None):
    """A file tree (the writable layer, a volume) comes whole each time: clear what an earlier
    round left (but `keep`, the staged pages), so files deleted meanwhile go here too."""
    for entry in os.listdir(root):
        if entry != keep:
            path = os.path.join(root, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    tar = subprocess.Popen(
        ["tar", "-C", root, "--xattrs", "--xattrs-include=trusted.*", "-xpf", "-"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    received = 0
    for op, chunk in _chunks(stream):
        if op != b"D":
            raise ValueError("the layer is data only")
        tar.stdin.write(chunk)
        received += len(chunk)
    tar.stdin.close()
    if tar.wait() != 0:
        raise RuntimeError(f"untar into {root}: " + tar.stderr.read().decode()[-300:])
    return received


def _latest_round():
    try:
        with open(os.path.join(here(), "latest")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def load_image():
    t = target()
    proc = subprocess.run(
        ["docker", "-H", "unix://" + t["docker_socket"], "load"],
        stdin=sys.stdin.buffer,
        capture_output=True,
    )
    if proc.returncode != 0:
        fail("docker load: " + proc.stderr.decode(errors="replace")[-300:])
    out({"loaded": proc.stdout.decode(errors="replace").strip()})


@contextlib.contextmanager
def _criu_options(options):
    """runc hands /etc/criu/runc.conf to CRIU, and Docker 20.10 has no per-container way to
    name another file (no annotations). So whimbrel's options stand in that file for one
    restore at a time, under a lock that dies with its holder, the file that was there saved
    first: whoever takes the lock next puts back what a killed restore left."""
    os.makedirs(os.path.dirname(CRIU_CONF_LOCK), mode=0o700, exist_ok=True)
    lock = os.open(CRIU_CONF_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        put_back_criu_conf()
        before = _read_text(CRIU_CONF)
        os.makedirs(os.path.dirname(CRIU_CONF), exist_ok=True)
        _write_atomic(CRIU_CONF_SAVED, json.dumps({"before": before}))
        kept = [line for line in (before or "").splitlines() if line.strip() not in options]
        _write_atomic(CRIU_CONF, "\n".join([*kept, *options]) + "\n")
        try:
            yield
        finally:
            put_back_criu_conf()
    finally:
        os.close(lock)


def put_back_criu_conf():
    """The runc.conf saved before a restore, back in place (call with the lock held)."""
    saved = _read_text(CRIU_CONF_SAVED)
    if saved is None:
        return
    before = json.loads(saved)["before"]
    if before is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(CRIU_CONF)
    else:
        _write_atomic(CRIU_CONF, before)
    os.unlink(CRIU_CONF_SAVED)


def _read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_atomic(path, text):
    temp = f"{path}.{os.getpid()}.new"
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    _sync_dir(os.path.dirname(path))


def restore(t):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit."""
    t0 = time.monotonic()
    try:
        with _criu_options(RESTORE_OPTIONS):
            docker("start", "--checkpoint", CHECKPOINT, t["container"])
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", t["container"])
    except RuntimeError as exc:
        abort_target(t["migration"], t["docker_socket"], t["container"])
        raise RuntimeError(f"restore: {exc}") from None
    if not state.startswith("running"):
        abort_target(t["migration"], t["docker_socket"], t["container"])
        raise RuntimeError(f"restored container is {state}")
    return {"restored": True, "restore_s": time.monotonic() - t0, "pid": int(state.split()[1])}


def status():
    out({"state": recorded(target()["migration"]) or "pending"})


# What the source may ask for over the link.
ACTIONS = {
    "sink": sink,
    "rounds": rounds,
    "recv": recv,
    "settle": lambda: settle(),
    "status": status,
    "load-image": load_image,
    "stripe": stripe,
}
# What the operator runs over its own session (`python3 - ACTION ARGS`).
OPERATOR_ACTIONS = {"expect": expect, "settle": settle, "forget": forget}


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) > 1:  # the operator's own session: the forced command has no arguments
        words, actions = sys.argv[1:], OPERATOR_ACTIONS
    else:
        words, actions = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", "")), ACTIONS
    if not words or words[0] not in actions:
        fail("refused {!r} (allowed: {})".format(words[:1], ", ".join(actions)))
    try:
        actions[words[0]](*words[1:])
    except (OSError, ValueError, EOFError, RuntimeError, TypeError) as exc:
        fail(f"{words[0]}: {exc}")


if __name__ == "__main__":
    main()
