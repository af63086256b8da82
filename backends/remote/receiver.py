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
import io
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time

from nodelib import criu_conf_with, fail, out, read_text, resume_tasks, sync_dir
from wire import failpoint

CHECKPOINT = "whimbrel"
MAX_STRIPES = 16  # a sanity bound on what a source may ask for (whimbrel uses 8 at most)
FRAME_LIMIT = 1 << 24
DECISIONS = "/var/lib/whimbrel/decisions"
# How long a restored, fenced copy waits for the source's "commit" before it records "aborted"
# and goes: the source sends it a round trip after the restore's answer.
COMMIT_WAIT_S = 30.0
# CRIU options of a whimbrel restore: established connections closed (their peer address is
# gone on this node), and the tasks left stopped: the fence, lifted at commit.
RESTORE_OPTIONS = ("tcp-close", "leave-stopped")


def here():
    """The link's private dir, where the operator put this script and target.json."""
    return os.path.dirname(os.path.abspath(__file__))


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
    sync_dir(path)
    return recorded(mig)


def expect(mig):
    """Run by the operator before it makes the target container: the decision dir, without
    which nothing can be decided for `mig` here."""
    os.makedirs(DECISIONS, mode=0o700, exist_ok=True)
    os.mkdir(_decision_dir(mig), 0o700)
    sync_dir(DECISIONS)
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
        try:
            docker("rm", "-f", cid, sock=sock)
        except RuntimeError as exc:
            if "No such container" not in str(exc):
                raise  # still there, perhaps: the operator's cleanup or `recover` tries again
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
    resume_tasks(pid, cid)
    with contextlib.suppress(RuntimeError):  # once served, only space: a warning at most
        docker("checkpoint", "rm", cid, CHECKPOINT, sock=sock)
    return warning


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
    name = _file_name(_read(stream, n).decode())
    offset, length = struct.unpack(">QQ", _read(stream, 16))
    return name, offset, length


def _copy(src, name, offset, length, dst):
    with src.open(name) as f:
        f.seek(offset)
        while length:
            chunk = f.read(min(length, 1 << 22))
            if not chunk:
                raise EOFError("short copy from " + name)
            dst.write(chunk)
            length -= len(chunk)


def rounds(k, token):
    """The pre-copy rounds, one stream each over the same sessions, answered one by one: the
    sessions and this script start once for all the rounds, not once a round."""
    t = target()
    stream = joined(k, token)
    number = 0
    with _staging(t) as staging:
        while stream.more():
            name = f"round-{number}"
            with staging.sub(name, create=True) as out_dir, _latest_round(staging) as prev:
                received, files = _receive(stream, t, prev, out_dir, out_dir, final=False)
            _latest(staging, name)
            out({"round": number, "received_bytes": received, "files": files})
            number += 1


def _staging(t):
    """/.wb in the target container's root file system: the page files of the final round
    are staged there (CRIU opens them from inside the container), and the rounds' (round-N/)
    too, so the final round takes the last round's page files by a rename. From a round kept
    in this script's dir (another mount, even where it is the same file system, as beside
    Docker's data root in the lab) that was a copy of the whole state inside the downtime:
    1.5 s at 1 GiB. Made root's alone: the images are the container's memory, and the
    container's own users see its root file system. The source's layer may not touch it."""
    with Dir(t["upper_dir"]) as upper:
        return upper.sub(STAGING, create=True)


def _latest(staging, name):
    """Make round `name` the one the next builds on; the one before is no longer needed."""
    previous = read_text(os.path.join(here(), "latest"))
    if previous and previous != name:
        staging.remove_tree(previous)
    with open(os.path.join(here(), "latest"), "w") as f:
        f.write(name)


def recv(which, k, token):
    """The final round's images (and the writable layer, as the file "@layer"), restored where
    `docker start --checkpoint` looks for them. The final round goes on in this session:
    restore, answer, and keep the restored container only if the source then says commit; a
    lost source (EOF) undoes it."""
    if which != "final":
        raise ValueError(f"recv {which!r}: pre-copy rounds go over `rounds`")
    t = target()
    shutil.rmtree(t["checkpoint_dir"], ignore_errors=True)
    os.makedirs(t["checkpoint_dir"], mode=0o700)
    stream = joined(k, token)
    # The source opens this session armed, while the pre-copy rounds still run: the round to
    # build on is the last one, known once the final round's data begins.
    if not stream.more():
        out({"stood_down": True})
        return
    with contextlib.ExitStack() as held:  # (not parenthesised withs: nodes may run 3.9)
        out_dir = held.enter_context(Dir(t["checkpoint_dir"]))
        staging = held.enter_context(_staging(t))
        prev = held.enter_context(_latest_round(staging))
        received, files = _receive(stream, t, prev, out_dir, staging, final=True)
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
    """One round's stream into out_dir (page files into pages_dir), built on round `prev`
    (each a Dir; prev may be None); returns (bytes received, files)."""
    received = files = 0
    while True:
        (n,) = struct.unpack(">I", _read(stream, 4))
        if n == 0:
            break
        header = json.loads(_read(stream, n))
        name = header["name"]
        if name == "@layer":
            received += _receive_tree(stream, t["upper_dir"], reserved=STAGING)
            continue
        if name.startswith("@volume:"):
            volume = name.split(":", 1)[1]
            if volume not in t["volumes"]:
                raise ValueError(f"volume {volume!r} is not the target container's")
            received += _receive_tree(stream, t["volumes"][volume])
            continue
        _file_name(name)
        is_pages = name.startswith("pages-")
        into = pages_dir if is_pages else out_dir
        if header.get("inplace") and prev is not None:
            received += _patch_file(stream, prev, into, name)
        else:
            with into.create(name) as f:
                received += _receive_file(stream, f, prev, pages_dir, out_dir)
        if is_pages and final:
            # CRIU opens page files inside the container's mount namespace: a link to a path
            # that resolves there, not on the host.
            out_dir.symlink("/" + STAGING + "/" + name, name)
        files += 1
    stream.finish()
    return received, files


def _file_name(name):
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"bad file name {name[:80]!r}")
    return name


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
            _copy(prev, *item, f)
        else:
            f.flush()
            _copy(pages_dir if item[0].startswith("pages-") else out_dir, *item, f)
    return received


def _patch_file(stream, prev, into, name):
    """Last round's file becomes this round's, patched where pages changed (the source only
    asks for this when every page it keeps is at the same offset)."""
    prev.move(name, into)
    received = 0
    with into.open(name, os.O_RDWR) as f:
        for op, item in _chunks(stream):
            if op == b"D":
                f.write(item)
                received += len(item)
            elif op == b"P" and item[0] == name and item[1] == f.tell():
                f.seek(item[2], os.SEEK_CUR)
            else:
                raise ValueError("not an in-place patch")
        f.truncate()
    return received


def _receive_tree(stream, root, reserved=None):
    """A file tree (the writable layer, a volume) comes whole each time: clear what an earlier
    round left (but `reserved`, the staging dir), so files deleted meanwhile go here too."""
    with Dir(root) as tree:
        for entry in os.listdir(tree.fd):
            if entry != reserved:
                tree.remove_tree(entry)
        reader = ChunkReader(_chunks(stream))
        extract(io.BufferedReader(reader, 1 << 20), tree, reserved)
        return reader.received


def _latest_round(staging):
    """The round the next one builds on (a Dir), or a stand-in for none."""
    name = read_text(os.path.join(here(), "latest"))
    return staging.sub(name) if name else contextlib.nullcontext()


# ------------------------------------------------------------------ confined writes
# What the source sends is written as root into the target container's layer, its volumes
# and the checkpoint dir, so every name is taken relative to a directory opened once, and no
# link is ever followed: a hostile source can plant links, but never write or read through
# one (a link is the container's own business, never this script's).

STAGING = ".wb"
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Dir:
    """A directory by fd; every name in it is opened without following a link."""

    def __init__(self, path, dir_fd=None):
        self.fd = os.open(path, OPEN_DIR, dir_fd=dir_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def sub(self, name, create=False):
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad directory name {name[:80]!r}")
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=self.fd)
        return Dir(name, dir_fd=self.fd)

    def create(self, name):
        """A new regular file: whatever had the name goes first (a planted link or hard link
        is unlinked, never written through)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.fdopen(os.open(name, flags, 0o600, dir_fd=self.fd), "wb")

    def open(self, name, flags=os.O_RDONLY):
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_nlink != 1:
            os.close(fd)
            raise ValueError(f"{name}: not a file of this round's own")
        return os.fdopen(fd, "r+b" if flags & os.O_RDWR else "rb")

    def move(self, name, into):
        os.replace(name, name, src_dir_fd=self.fd, dst_dir_fd=into.fd)

    def symlink(self, target, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)
        os.symlink(target, name, dir_fd=self.fd)

    def remove_tree(self, name):
        """Remove an entry, a directory with all it holds, without following links."""
        info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=self.fd)
            return
        with Dir(name, dir_fd=self.fd) as sub:
            for entry in os.listdir(sub.fd):
                sub.remove_tree(entry)
        os.rmdir(name, dir_fd=self.fd)


class ChunkReader(io.RawIOBase):
    """A file tree's D chunks as a readable stream (for tarfile), counting what came."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.view = memoryview(b"")
        self.received = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.view:
            op, chunk = next(self.chunks, (None, None))
            if op is None:
                return 0
            if op != b"D":
                raise ValueError("a file tree is data only")
            self.view = memoryview(chunk)
            self.received += len(chunk)
        n = min(len(buffer), len(self.view))
        buffer[:n] = self.view[:n]
        self.view = self.view[n:]
        return n


# Extended attributes a layer may carry: overlayfs's own (opaque directories, redirects).
XATTR_PREFIX = "trusted.overlay."


def extract(reader, root, reserved=None):
    """Unpack the tar stream `reader` into the Dir `root`, refusing what would leave it: an
    absolute name or one with "..", an entry under `reserved`, a hard link to anything but a
    file unpacked here, a device (overlayfs's whiteouts, character devices 0:0, excepted).
    Owners and modes are kept (numeric); directories get theirs once their contents are in."""
    directories = []
    with tarfile.open(fileobj=reader, mode="r|") as archive:
        for member in archive:
            parts = _member_parts(member.name, reserved)
            if not parts:
                continue  # "." itself: the operator's dir keeps its own owner and mode
            with _walk(root, parts[:-1]) as parent:
                _place(archive, member, parent, parts[-1], root, reserved)
            if member.isdir():
                directories.append((parts, member))
    while reader.read(1 << 20):
        pass  # the archive's padding, up to the end of its stream
    for parts, member in reversed(directories):
        with _walk(root, parts) as directory:
            _attributes(member, directory.fd)


def _member_parts(name, reserved):
    if name.startswith("/") or "\0" in name:
        raise ValueError(f"tar: absolute or bad name {name[:80]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"tar: {name[:80]!r} climbs out")
    if parts and reserved is not None and parts[0] == reserved:
        raise ValueError(f"tar: {name[:80]!r} is in the staging dir")
    return parts


def _walk(root, parts):
    """The Dir at `parts` under root, every step opened without following a link."""
    current = Dir(".", dir_fd=root.fd)
    for part in parts:
        with current:
            current = Dir(part, dir_fd=current.fd)
    return current


def _place(archive, member, parent, name, root, reserved):
    fd = parent.fd
    if member.isdir():
        try:
            os.mkdir(name, 0o700, dir_fd=fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise ValueError(f"tar: {member.name[:80]!r} is not a directory here") from None
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)  # a later entry of the same name replaces it
    if member.isreg():
        with parent.create(name) as f:
            shutil.copyfileobj(archive.extractfile(member), f, 1 << 20)
            _attributes(member, f.fileno())
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=fd)
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    elif member.islnk():
        target = _member_parts(member.linkname, reserved)
        if not target:
            raise ValueError(f"tar: hard link {member.name[:80]!r} to the tree itself")
        with _walk(root, target[:-1]) as source:
            info = os.stat(target[-1], dir_fd=source.fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"tar: hard link {member.name[:80]!r} to a non-file")
            os.link(target[-1], name, src_dir_fd=source.fd, dst_dir_fd=fd, follow_symlinks=False)
    elif member.ischr() and (member.devmajor, member.devminor) == (0, 0):
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=fd)  # a whiteout
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=fd)
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    else:
        raise ValueError(f"tar: {member.name[:80]!r}: a device or unknown kind, refused")


def _attributes(member, fd):
    """Owner, mode, times and overlayfs's xattrs of a file or directory, by its fd."""
    for key, value in member.pax_headers.items():
        name = key[len("SCHILY.xattr.") :]
        if key.startswith("SCHILY.xattr.") and name.startswith(XATTR_PREFIX):
            os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
    os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    os.utime(fd, (member.mtime, member.mtime))


def load_image():
    """`docker load` of the image the operator named, and of nothing else: the archive is kept
    aside and loaded only if its manifest holds that one image (by ID) under no other name
    than the operator's (a hostile source could otherwise retag any image on this node)."""
    t = target()
    image = t["image"]
    spool = os.path.join(here(), "image.tar")
    try:
        with open(spool, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        check_image_archive(spool, image["id"], image["ref"])
        proc = subprocess.run(
            ["docker", "-H", "unix://" + t["docker_socket"], "load", "-i", spool],
            capture_output=True,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool)
    if proc.returncode != 0:
        fail("docker load: " + proc.stderr.decode(errors="replace")[-300:])
    out({"loaded": proc.stdout.decode(errors="replace").strip()})


def check_image_archive(path, image_id, ref):
    """Refuse a `docker save` archive that holds anything but image `image_id` named `ref`."""
    names = {ref} if ":" in ref.rsplit("/", 1)[-1] else {ref, ref + ":latest"}
    want = image_id.split(":", 1)[-1]
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        try:
            legacy = json.load(archive.extractfile("repositories"))
        except KeyError:
            legacy = {}
    if not isinstance(manifest, list) or len(manifest) != 1:
        raise ValueError("image archive: not exactly one image")
    config = str(manifest[0].get("Config", ""))
    if config.split("/")[-1].rsplit(".", 1)[0] != want:
        raise ValueError(f"image archive: image {config[:80]!r} is not the one named ({want})")
    tags = set(manifest[0].get("RepoTags") or ())
    tags |= {f"{repo}:{tag}" for repo, tags_ in legacy.items() for tag in tags_}
    if not tags <= names:
        raise ValueError(f"image archive: names {sorted(tags - names)[:3]} were not asked for")


def restore(t):
    """`docker start --checkpoint`, fenced: the restored tasks stay stopped until commit."""
    t0 = time.monotonic()
    try:
        with criu_conf_with(RESTORE_OPTIONS):
            failpoint(t, "receiver.before-restore")
            docker("start", "--checkpoint", CHECKPOINT, t["container"])
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", t["container"])
    except RuntimeError as exc:
        abort_target(t["migration"], t["docker_socket"], t["container"])
        raise RuntimeError(f"restore: {exc}") from None
    if not state.startswith("running"):
        abort_target(t["migration"], t["docker_socket"], t["container"])
        raise RuntimeError(f"restored container is {state}")
    return {"restored": True, "restore_s": time.monotonic() - t0, "pid": int(state.split()[1])}


# What the source may ask for over the link.
ACTIONS = {
    "sink": sink,
    "rounds": rounds,
    "recv": recv,
    "settle": lambda: settle(),
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
