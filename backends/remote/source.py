"""whimbrel node helper for the SOURCE node of a migration (standard library only).

  probe-send BYTES LINKS        stream BYTES zero bytes over the link's stripes into the
                                receiver's sink; time them
  prepare MIG CID SOCK          lock the container (one migration at a time, held on this node),
                                make the migration's work dir, find runc's root and the
                                container's writable layer; prints them
  agent MIG CID LINK CFG        the migration's agent, a JSON line answering each line on stdin:
                                "round N" is pre-copy round N: `runc checkpoint --leave-running`
                                (a short freeze), then only the pages the target does not hold
                                yet, over sessions kept open from round to round; "handover"
                                fires the final round. That runs DETACHED, in a daemon the agent
                                starts first, which opens its sessions and waits, armed: fired,
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

Images go as a stream of files; for CRIU's pages-*.img, page by page (4 KiB): a page whose
SHA-1 the target already holds from the previous round is sent as a copy instruction, so each
round sends only what changed (SHA-1 is for identity against accident here: a forged collision
could only corrupt the forger's own memory).
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import mmap
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from nodelib import criu_conf_as_found, failpoint, resume_tasks

PAGE = 4096
BASE = "/var/tmp/whimbrel"
LOCKS = "/run/whimbrel-locks"
RUNC = "runc"


def out(obj):
    print(json.dumps(obj), flush=True)


def fail(message):
    out({"error": message})
    sys.exit(1)


def workdir(mig):
    if not mig.replace("-", "").isalnum():
        fail("bad migration id")
    return os.path.join(BASE, mig)


def docker(sock, *args):
    proc = subprocess.run(
        ["docker", "-H", "unix://" + sock, *args], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


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


# ------------------------------------------------------------------ lock


# A migration that never reached its agent (preflight: the link, an image shipped, probes)
# holds its lock this long; from the agent on, its daemon's life holds it.
PREFLIGHT_LEASE_S = 1800.0


def lock(mig, cid):
    """Take the container's lock for `mig` (its work dir made first): refused while another
    migration holds it. Checked and taken under a guard lock, so two migrations never both
    find it free, and a fresh lock is never mistaken for a stale one."""
    os.makedirs(LOCKS, mode=0o700, exist_ok=True)
    guard = os.open(os.path.join(LOCKS, ".guard"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        path = os.path.join(LOCKS, cid)
        owner = _read_json(path, None)
        if owner is not None and owner.get("migration") != mig and _holds(owner):
            fail(
                "container is already being migrated (migration {}, since {})".format(
                    owner.get("migration", "?"),
                    time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0))),
                )
            )
        _write_json(path, {"migration": mig, "since": time.time(), "pid": os.getpid()})
        sweep(mig)
    finally:
        os.close(guard)


# What a dead migration's work dir keeps for `recover`: its outcome and what settling needs.
RECOVERY_FILES = ("prepare.json", "handover.cfg", "handover.json", "handover.jsonl", "handover.pid")


def sweep(own):
    """What migrations whose engine died before releasing them left here, tidied (run under
    the guard by each prepare). A work dir goes whole if its migration never armed a hand-over
    (nothing of it is left to settle on this node); else its dumps and page indexes go and
    what `recover` reads stays. Locks that hold nothing go. Whatever still holds (a process
    of it alive, a hand-over unsettled or fired, a preflight within its lease, aged from the
    dir's last change) is left alone."""
    for name in os.listdir(BASE):
        path = os.path.join(BASE, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if name == own or not stat.S_ISDIR(info.st_mode) or _in_use(name, info.st_mtime):
            continue
        if not os.path.exists(os.path.join(path, "handover.pid")):
            shutil.rmtree(path, ignore_errors=True)
            continue
        for entry in set(os.listdir(path)) - set(RECOVERY_FILES):
            inner = os.path.join(path, entry)
            if os.path.isdir(inner) and not os.path.islink(inner):
                shutil.rmtree(inner, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(inner)
    for name in os.listdir(LOCKS):
        if name.startswith("."):  # the guard
            continue
        owner = _read_json(os.path.join(LOCKS, name), {})
        mig = str(owner.get("migration", ""))
        if mig != own and not _in_use(mig, owner.get("since", 0)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(LOCKS, name))


def _in_use(mig, since):
    return _holds({"migration": mig, "since": since}) or _running(mig)


def _running(mig):
    """Does a process of this migration (its agent, daemon, a helper) run here?"""
    if not mig:
        return False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if mig.encode() in f.read():
                return True
    return False


def _holds(owner):
    """Does the lock's owner still hold it? Not once its work dir is gone or its hand-over
    ended settled; always while its daemon lives or its hand-over is unsettled (the container
    may live on the target: a second migration of the frozen source would make two); before
    its agent, for PREFLIGHT_LEASE_S."""
    mig = str(owner.get("migration", ""))
    if not mig.replace("-", "").isalnum() or not os.path.isdir(os.path.join(BASE, mig)):
        return False
    wd = os.path.join(BASE, mig)
    outcome = _read_json(os.path.join(wd, "handover.json"), None)
    if outcome is not None:
        return bool(outcome.get("unsettled") or outcome.get("source_left"))
    if _daemon_alive(mig):
        return True
    if os.path.exists(os.path.join(wd, "handover.pid")):
        return _fired_log(wd)  # a daemon that died fired leaves it for `recover`
    return time.time() - owner.get("since", 0) < PREFLIGHT_LEASE_S


def _fired_log(wd):
    try:
        with open(os.path.join(wd, "handover.jsonl")) as f:
            return '"kind": "fired"' in f.read()
    except FileNotFoundError:
        return False


def unlock(cid, mig):
    path = os.path.join(LOCKS, cid)
    if (_read_json(path, None) or {}).get("migration") == mig:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def private_base():
    """BASE, where dumps (the container's memory) are written, as root's private dir: made
    0700, or put right if root's own; refused if it is a link or someone else's (/var/tmp is
    world-writable: another user could have made it first)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(BASE, 0o700)
    info = os.lstat(BASE)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{BASE} is not a directory of this user's own: refusing to use it")
    if info.st_mode & 0o077:
        os.chmod(BASE, 0o700)


def _write_json(path, obj):
    temp = f"{path}.{os.getpid()}.new"
    with open(temp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


# ------------------------------------------------------------------ images over the link

OP_DATA, OP_COPY_PREV, OP_COPY_CUR, OP_END = b"D", b"P", b"C", b"E"


def load_index(wd):
    """What the target holds from the previous round: ({sha1: (name, offset)}, {name: file
    sha1}, {pages file name: (its page digests, its 1 MiB chunk digests)})."""
    index, layout = {}, {}
    try:
        with open(os.path.join(wd, "index.json")) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return index, {}, layout
    for name in names:
        if name.startswith("pages-"):
            with open(os.path.join(wd, "index-" + name), "rb") as f:
                digests = f.read()
            with open(os.path.join(wd, "chunks-" + name), "rb") as f:
                layout[name] = (digests, f.read())
            for i in range(0, len(digests), 20):
                index.setdefault(digests[i : i + 20], (name, (i // 20) * PAGE))
    return index, names, layout


def _header(stream, **fields):
    header = json.dumps(fields).encode()
    stream.write(struct.pack(">I", len(header)) + header)


def send_images(img_dir, wd, stream, held, trees=()):
    """Write the round's images, then the file trees (`[(entry, dir)]`: the writable layer as
    "@layer", each named volume as "@volume:NAME") to `stream`; returns (state, sent) bytes.
    `held` is load_index()'s account of what the target holds."""
    index, prev_files, layout = held
    state = sent = 0
    files, pages = {}, {}
    names = [
        n
        for n in sorted(os.listdir(img_dir))
        if os.path.isfile(os.path.join(img_dir, n)) and not n.endswith(".log")
    ]
    for name in names:
        with open(os.path.join(img_dir, name), "rb") as f:
            # Page files are mapped, not read: no copy of the whole state in this process.
            size = os.fstat(f.fileno()).st_size
            if name.startswith("pages-") and size:
                data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            else:
                data = f.read()
        state += len(data)
        if name.startswith("pages-"):
            files[name] = "pages"
            pages[name] = (data, *_page_runs(name, memoryview(data), index, layout.get(name)))
            continue
        files[name] = hashlib.sha1(data).hexdigest()
        if prev_files.get(name) == files[name]:
            _header(stream, name=name)
            stream.write(OP_COPY_PREV + _name_ref(name, 0, len(data)) + OP_END)
        else:
            _header(stream, name=name)
            stream.write(OP_DATA + struct.pack(">Q", len(data)) + data + OP_END)
            sent += len(data)
    # A pages file whose kept pages all stay where they are is patched in place on the target
    # (a round then costs what changed, not the whole state), unless another file still
    # copies from last round's version of it.
    borrowed = {
        src
        for name, (_, runs, _) in pages.items()
        for op, src, *_ in runs
        if op == OP_COPY_PREV and src != name
    }
    for name, (data, runs, digests) in pages.items():
        inplace = (
            name in layout
            and name not in borrowed
            and all(
                op == OP_DATA or (src == name and off == start) for op, src, off, _, start in runs
            )
        )
        _header(stream, name=name, inplace=inplace)
        view = memoryview(data)
        for run in runs:
            sent += _flush(stream, view, run)
        stream.write(OP_END)
        for kind, data_ in zip(("index-", "chunks-"), digests, strict=True):
            with open(os.path.join(wd, kind + name + ".new"), "wb") as f:
                f.write(data_)
    for entry, directory in trees:
        _header(stream, name=entry)
        sent += tar_stream(directory, stream)
        stream.write(OP_END)
    stream.write(struct.pack(">I", 0))
    stream.flush()
    # What the target now holds is this round's set: it becomes the next round's index.
    for name in pages:
        for kind in ("index-", "chunks-"):
            os.replace(os.path.join(wd, kind + name + ".new"), os.path.join(wd, kind + name))
    with open(os.path.join(wd, "index.json"), "w") as f:
        json.dump(files, f)
    return state, sent


CHUNK = 256 * PAGE


def _page_runs(name, view, index, prev):
    """The file as runs [op, src name, src offset, length, start]: pages the target holds
    (preferably at the same place), pages repeated within the file, and new data; and the
    file's digests (per page, then per 1 MiB chunk). A chunk whose digest matches last
    round's at the same place is taken whole, without hashing its pages one by one: a round
    then costs about what changed (one large hash runs near memory speed, 256 small ones do
    not)."""
    prev_pages, prev_chunks = prev or (b"", b"")
    pages = bytearray()
    seen = {}
    runs = []
    run = None
    starts = range(0, len(view), CHUNK)
    # sha1 lets go of the GIL: on every core at once (1 GiB: 0.34 s on two, 0.58 s on one).
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        chunks = b"".join(pool.map(lambda c: hashlib.sha1(view[c : c + CHUNK]).digest(), starts))

    def add(op, src, off, length, pos):
        nonlocal run
        if run and run[0] == op and (op == OP_DATA or (run[1] == src and run[2] + run[3] == off)):
            run[3] += length
        else:
            run = [op, src, off, length, pos]
            runs.append(run)

    for number, chunk in enumerate(starts):
        end = min(chunk + CHUNK, len(view))
        digest = chunks[number * 20 : number * 20 + 20]
        held = prev_pages[chunk // PAGE * 20 : end // PAGE * 20]
        if (
            prev_chunks[number * 20 : number * 20 + 20] == digest
            and len(held) == (end - chunk) // PAGE * 20
        ):
            pages += held
            add(OP_COPY_PREV, name, chunk, end - chunk, chunk)
            continue
        for pos in range(chunk, end, PAGE):
            page = view[pos : pos + PAGE]
            d = hashlib.sha1(page).digest()
            pages += d
            if prev_pages[pos // PAGE * 20 : pos // PAGE * 20 + 20] == d:
                add(OP_COPY_PREV, name, pos, len(page), pos)
            elif d in index:
                add(OP_COPY_PREV, *index[d], len(page), pos)
            elif d in seen:
                add(OP_COPY_CUR, name, seen[d], len(page), pos)
            else:
                seen[d] = pos
                add(OP_DATA, None, None, len(page), pos)
    return runs, (bytes(pages), chunks)


def _flush(stream, view, run):
    """Write one run of pages: their data, or where the target finds them; returns bytes sent."""
    op, src, off, length, start = run
    if op == OP_DATA:
        stream.write(OP_DATA + struct.pack(">Q", length) + view[start : start + length])
        return length
    stream.write(op + _name_ref(src, off, length))
    return 0


def _name_ref(name, offset, length):
    raw = name.encode()
    return struct.pack(">H", len(raw)) + raw + struct.pack(">QQ", offset, length)


def tar_stream(directory, stream):
    """The writable layer as a tar in D frames (overlay whiteouts and opaque-dir xattrs kept)."""
    proc = subprocess.Popen(
        [
            "tar",
            "-C",
            directory,
            "--xattrs",
            "--xattrs-include=trusted.*",
            "--exclude=./.wb",
            "-cpf",
            "-",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    total = 0
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        stream.write(OP_DATA + struct.pack(">Q", len(chunk)) + chunk)
        total += len(chunk)
    if proc.wait() != 0:
        raise RuntimeError(f"tar of {directory} failed")
    return total


BLOCK = 1 << 20


class Striped:
    """A byte stream dealt in BLOCK-sized frames round-robin over the stripes' sessions (see
    receiver.py); end() writes the end frame. Large writes are framed straight from the
    caller's buffer, not copied."""

    def __init__(self, sinks):
        self.sinks = sinks
        self.count = 0
        self.pending = bytearray()

    def write(self, data):
        if len(self.pending) + len(data) < BLOCK:  # the many small fields: C-fast
            self.pending += data
            return
        data = memoryview(data).cast("B")
        if self.pending:
            room = BLOCK - len(self.pending)
            self.pending += data[:room]
            data = data[room:]
            if len(self.pending) < BLOCK:
                return
            self._frame(self.pending)
            self.pending = bytearray()
        while len(data) >= BLOCK:
            self._frame(data[:BLOCK])
            data = data[BLOCK:]
        self.pending += data

    def _frame(self, block):
        sink = self.sinks[self.count % len(self.sinks)]
        sink.write(struct.pack(">I", len(block)))
        sink.write(block)
        self.count += 1

    def flush(self):
        if self.pending:
            self._frame(self.pending)
            self.pending = bytearray()
        for sink in self.sinks:
            sink.flush()

    def end(self):
        self.flush()
        sink = self.sinks[self.count % len(self.sinks)]
        sink.write(struct.pack(">I", 0))
        sink.flush()


class Transfer:
    """The receiver's `action` over every stripe of the link, started before there is anything
    to send: the sessions open (a round trip each, and the receiver's own start) while the
    container still runs, and the receiver says "ready" once every stripe has joined."""

    def __init__(self, links, action):
        token = os.urandom(8).hex()
        self.session = _session(links[0], f"{action} {len(links)} {token}")
        self.stripes = [
            _session(argv, f"stripe {token} {index}") for index, argv in enumerate(links[1:], 1)
        ]
        self.stream = Striped([self.session.stdin, *(s.stdin for s in self.stripes)])
        self.is_ready = self.closed = False

    def ready(self):
        if self.is_ready:
            return
        line = self.session.stdout.readline()
        if not line.startswith(b"ready"):
            self.close(timeout=5)
            try:
                error = json.loads(line)["error"]
            except (ValueError, KeyError, TypeError):
                error = f"receiver did not start ({line[:200]!r})"
            raise RuntimeError("target: " + error)
        self.is_ready = True

    def close(self, timeout=60):
        """Close every session's input (stripes first); returns the first stripe's error.
        A receiver that did not get the whole stream fails; one that restored and gets no
        commit undoes the restore."""
        if self.closed:
            return None
        self.closed = True
        error = close_stripes(self.stripes, timeout)
        with contextlib.suppress(OSError):  # a broken pipe again, flushing
            self.session.stdin.close()
        return error

    def send(self, feed):
        """Feed one stream, end it, and return (feed's result, the receiver's answer to it);
        the sessions stay open for the next."""
        self.ready()
        try:
            result = feed(self.stream)
            self.stream.end()
        except BrokenPipeError:
            # The link broke: the receiver's own error says more than the broken pipe.
            stripe_error = self.close(timeout=10)
            reply = _reply(self.session)
            raise RuntimeError(
                "target: " + (reply.get("error") or stripe_error or "link lost")
            ) from None
        reply = _reply(self.session)
        if "error" in reply:
            self.close(timeout=10)
            raise RuntimeError("target: " + reply["error"])
        return result, reply


def _session(argv, action):
    return subprocess.Popen(
        [*argv, action], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=BLOCK
    )


def close_stripes(stripes, timeout=60):
    """End the stripe sessions (their stream has ended, or failed); returns the first error."""
    errors = []
    for proc in stripes:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for index, proc in enumerate(stripes, 1):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            errors.append(f"stripe {index}: {_answer(proc).get('error', 'failed')}")
    return errors[0] if errors else None


def _answer(proc):
    """The last JSON line a session wrote, or {"error": ...}."""
    lines = proc.stdout.read().decode(errors="replace").strip().splitlines()
    if not lines:
        return {}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": lines[-1][:300]}


def _answered(proc):
    """The receiver's answer once its session ends; its error raised."""
    reply = _answer(proc)
    code = proc.wait()
    if code != 0 or "error" in reply:
        raise RuntimeError("target: " + reply.get("error", f"link failed (exit {code})"))
    return reply


def run_link(links, action, feed):
    """Run the receiver's `action` on the link's first connection alone, feeding its stdin
    (an image, once; an abort); returns (feed's result, the receiver's answer)."""
    proc = _session(links[0], action)
    try:
        result = feed(proc.stdin)
    except BrokenPipeError:
        result = None
    with contextlib.suppress(OSError):
        proc.stdin.close()
    return result, _answered(proc)


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


def dump(mig, cid, leave_running, dirname):
    wd = workdir(mig)
    info = _info(wd)
    img = os.path.join(wd, dirname)
    work = img + ".work"
    shutil.rmtree(img, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    argv = [
        RUNC,
        "--root",
        info["runc_root"],
        "checkpoint",
        "--tcp-established",
        "--image-path",
        img,
        "--work-path",
        work,
    ]
    if leave_running:
        argv.append("--leave-running")
    if ("criu.dump-final" if dirname == "final" else "criu.dump-round") in info["failpoints"]:
        # A real CRIU failure mid-dump: the pages are to go to a page server nobody runs.
        argv += ["--page-server", "127.0.0.1:9"]
    with criu_conf_as_found():  # never with a restore's options, which would stop the source
        t0 = time.monotonic()
        proc = subprocess.run([*argv, cid], capture_output=True, text=True, timeout=600)
        elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        log = ""
        try:
            with open(os.path.join(work, "dump.log")) as f:
                log = " / ".join(line.strip() for line in f.readlines()[-3:])
        except OSError:
            pass
        clear_criu_lock()
        raise RuntimeError(f"CRIU dump failed: {proc.stderr.strip()[-200:]} {log}")
    return img, elapsed


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


# ------------------------------------------------------------------ actions


def _info(wd):
    with open(os.path.join(wd, "prepare.json")) as f:
        return json.load(f)


def _trees(info):
    return [("@layer", info["upper_dir"])] + [
        ("@volume:" + name, path) for name, path in sorted(info["volumes"].items())
    ]


def _faulty(info, fault, feed, stream):
    """The failpoint that cuts the rounds' link halfway through a round's stream."""
    if fault not in info.get("failpoints", {}):
        return feed(stream)

    class Cut:
        def __init__(self):
            self.n = 0

        def write(self, data):
            self.n += len(data)
            if self.n > 256 * 1024:
                subprocess.run(["pkill", "-KILL", "-f", "^ssh .* rounds "], capture_output=True)
                raise BrokenPipeError("link cut (injected)")
            stream.write(data)

        def flush(self):
            stream.flush()

    return feed(Cut())


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
        info = {
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
            json.dump(info, f)
    except (RuntimeError, OSError, SystemExit) as exc:  # SystemExit: lock() refused, said why
        unlock(cid, mig)
        shutil.rmtree(wd, ignore_errors=True)
        if isinstance(exc, SystemExit):
            raise
        fail(str(exc))
    out(info)


def _free(path):
    st = os.statvfs(path if os.path.exists(path) else "/")
    return st.f_bavail * st.f_frsize


def agent(mig, cid, link_json, cfg_json):
    """The migration's agent on the source, on the engine's word, a line at a time: "round N"
    runs pre-copy round N, "handover" fires the hand-over; a JSON line answers each.

    The rounds' sessions open once, while round 0 dumps, and stay open: a later round costs
    its dump, its data and one round trip for the answer. The hand-over runs in a daemon of
    its own, started here first: it opens the final round's sessions and waits, armed, while
    the rounds run, so nothing is left to open between the last round and the freeze. Fired,
    it goes on without us; if we end without firing it (EOF: the engine gave up, or is gone),
    it stands down."""
    wd = workdir(mig)
    links = json.loads(link_json)
    info = _info(wd)
    fire = _arm_handover(mig, cid, wd, links, json.loads(cfg_json))
    transfer, fired = None, False
    try:
        for line in sys.stdin:
            words = line.split()
            if words == ["handover"] and not fired:
                _fire(fire)
                fired = True
                out({"fired": True})
            elif len(words) == 2 and words[0] == "round" and not fired:
                if transfer is None:  # stop-and-copy has no rounds: no sessions for them
                    transfer = Transfer(links, "rounds")
                out(_round(mig, cid, wd, info, transfer, int(words[1])))
            else:
                raise ValueError(f"agent: unexpected {line.strip()[:80]!r}")
        if not fired:
            os.close(fire)  # the armed daemon stands down now, not once these sessions end
        error = transfer.close() if transfer is not None else None
        if error and not fired:  # once fired, how the rounds' sessions end is no matter
            raise RuntimeError("target: " + error)
        if transfer is not None and not fired:
            _answered(transfer.session)
    except (RuntimeError, OSError, ValueError) as exc:
        if transfer is not None:
            transfer.close(timeout=10)
        fail(str(exc))


def _arm_handover(mig, cid, wd, links, cfg):
    """Start the hand-over daemon, armed; returns the pipe that fires it (closing it unfired
    makes the daemon stand down)."""
    armed, fire = os.pipe()
    child = os.fork()
    if child:
        os.close(armed)
        os.waitpid(child, 0)
        return fire
    os.close(fire)
    os.setsid()
    if os.fork():
        os._exit(0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with open(os.path.join(wd, "handover.pid"), "w") as f:
        f.write(str(os.getpid()))
    with open(os.path.join(wd, "handover.cfg"), "w") as f:
        json.dump(cfg, f)  # what `settle` needs of it if this daemon dies
    emit = Events(wd)
    outcome = _handover(mig, cid, wd, links, cfg, emit, armed)
    with contextlib.suppress(OSError):  # stood down: the migration's work dir may be gone
        _write_json(os.path.join(wd, "handover.json"), outcome)
    emit("end", **outcome)
    os._exit(0)


def _fire(fire):
    """Tell the armed hand-over to go. A daemon already gone (it failed to arm) has said why
    in handover.jsonl, which the engine reads next."""
    with contextlib.suppress(BrokenPipeError):
        os.write(fire, b"go\n")
    os.close(fire)


def _fired(armed):
    """Wait until the agent fires the hand-over (True) or ends without firing it (False)."""
    data = os.read(armed, 16)
    os.close(armed)
    return data.startswith(b"go")


def _round(mig, cid, wd, info, transfer, number):
    # File trees go with round 0, and again whole with the final round.
    trees = _trees(info) if number == 0 else ()
    img, dump_s = dump(mig, cid, True, f"round-{number}")
    held = load_index(wd)
    t0 = time.monotonic()
    (state, sent), _reply = transfer.send(
        lambda stream: _faulty(
            info,
            f"kill-link-round-{number}",
            lambda s: send_images(img, wd, s, held, trees),
            stream,
        )
    )
    send_s = time.monotonic() - t0
    shutil.rmtree(img, ignore_errors=True)
    shutil.rmtree(img + ".work", ignore_errors=True)
    return {
        "dump_s": dump_s,
        "freeze_s": dump_s,
        "send_s": send_s,
        "state_bytes": state,
        "sent_bytes": sent,
        "stripes": len(transfer.stripes) + 1,
    }


class Events:
    """handover.jsonl: the detached hand-over's log, which `follow` streams to the engine."""

    def __init__(self, wd):
        self.path = os.path.join(wd, "handover.jsonl")
        self.t0 = time.monotonic()

    def __call__(self, kind, **fields):
        fields.update({"kind": kind, "t": time.monotonic() - self.t0, "wall": time.time()})
        # A log that cannot be written (the work dir released under a stood-down hand-over)
        # must not stop what the daemon does next, least of all a rollback.
        with contextlib.suppress(OSError), open(self.path, "a") as f:
            f.write(json.dumps(fields) + "\n")
            f.flush()
            os.fsync(f.fileno())


# How long the hand-over tries to learn the target's verdict when its commit may have reached
# the target but no answer came back; past it the source stays frozen, never resumed on a guess.
DECIDE_DEADLINE_S = 45.0
# How long removing a source whose target committed is retried.
REMOVE_DEADLINE_S = 30.0


def _handover(mig, cid, wd, links, cfg, emit, armed):
    """The final round, to a verdict: the source is resumed only when the target's record says
    aborted or the commit provably never left here; it is removed only when the record says
    committed; anything else leaves it frozen for `whimbrel recover`."""
    sock = cfg["docker_socket"]
    info = _info(wd)
    frozen = False
    t_freeze = transfer = None
    stage = "connect"
    try:
        # Every session is open and the receiver ready long before the freeze: none of their
        # start is downtime, nor time the container dirties pages in after the last round.
        transfer = Transfer(links, "recv final")
        transfer.ready()
        emit("armed")
        if not _fired(armed):
            transfer.close(timeout=10)
            return {
                "ok": False,
                "running_on": "source",
                "stood_down": True,
                "error": "the hand-over was never fired: whimbrel ended the migration before",
            }
        emit("fired")  # from here the lock holds until the outcome is settled
        held = load_index(wd)  # what the last round left on the target
        stage = "freeze"
        t_freeze = time.monotonic()
        failpoint(info, "handover.before-pause")
        docker(sock, "pause", cid)
        frozen = True
        emit("frozen")
        failpoint(info, "handover.after-pause")
        stage = "dump"
        img, dump_s = dump(mig, cid, True, "final")
        emit("dumped", dump_s=dump_s)
        failpoint(info, "handover.after-dump")
        stage = "send"
        t_send = time.monotonic()
        session = transfer.session
        state, sent = send_images(img, wd, transfer.stream, held, _trees(info))
        transfer.stream.end()
        if "drop-final-link" in info.get("failpoints", {}):
            session.kill()
        stripe_error = close_stripes(transfer.stripes)
        if stripe_error:
            raise RuntimeError(stripe_error)
        emit("sent", state_bytes=state, sent_bytes=sent, send_s=time.monotonic() - t_send)
        stage = "restore"
        reply = _reply(session)
        if not reply.get("restored"):
            raise RuntimeError("target: " + reply.get("error", "no answer to the final round"))
        emit("restored", restore_s=reply.get("restore_s"), state_bytes=state, sent_bytes=sent)
        failpoint(info, "handover.after-restore")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # No commit was sent: the target cannot have committed, whatever it holds.
        error = f"{stage}: {exc}"
        emit("failed", stage=stage, error=error)
        _close_transfer(transfer)
        if not frozen:
            return _resumed(sock, cid, emit, error, t_freeze)
        return _resumed_then_abort_target(sock, cid, links, emit, error, t_freeze)

    stage = "commit"
    verdict, said = _commit(session, links, emit)
    if verdict == "committed":
        t_serving = time.monotonic()
        emit("committed")
        shutil.rmtree(img, ignore_errors=True)
        shutil.rmtree(img + ".work", ignore_errors=True)
        removed = _remove_source(info, sock, cid, cfg.get("keep_source"), emit)
        return {
            "ok": True,
            "running_on": "target",
            "downtime_s": t_serving - t_freeze,
            "dump_s": dump_s,
            "send_s": t_serving - t_send,
            "restore_s": reply.get("restore_s"),
            "state_bytes": state,
            "sent_bytes": sent,
            "stripes": len(links),
            **({} if removed else {"source_left": True}),
        }
    if verdict == "aborted":
        return _resumed(sock, cid, emit, f"commit: {said}", t_freeze)
    if verdict == "unsent":
        return _resumed_then_abort_target(sock, cid, links, emit, f"commit: {said}", t_freeze)
    emit("failed", stage=stage, error=said)
    return {
        "ok": False,
        "running_on": "unknown",
        "unsettled": True,
        "error": f"commit: {said}; the source stays frozen (paused), never resumed on a guess: "
        "`whimbrel recover` settles it once the target answers",
        "dump_s": dump_s,
        "state_bytes": state,
        "sent_bytes": sent,
        "stripes": len(links),
    }


def _commit(session, links, emit):
    """Send the commit and learn the verdict the target recorded: (verdict, what was said)."""
    sent = False
    try:
        session.stdin.write(b"commit\n")
        session.stdin.close()  # flushes: past this line the word may have reached the target
        sent = True
        reply = _reply(session)
    except OSError as exc:
        reply = {"error": f"link lost ({exc})"}
    with contextlib.suppress(subprocess.TimeoutExpired):
        session.wait(timeout=10)
    if reply.get("committed"):
        return "committed", "committed"
    if "decision" in reply:
        return reply["decision"], reply.get("why", reply["decision"])
    said = reply.get("error", "no answer")
    if not sent:
        return "unsent", f"the commit could not be sent ({said})"
    emit("warning", text=f"commit sent, no answer ({said}): asking the target")
    verdict = _settle_target(links, emit, deadline_s=DECIDE_DEADLINE_S)
    if verdict in ("committed", "aborted"):
        return verdict, f"the target recorded {verdict} (its answer was lost: {said})"
    return "unknown", f"sent, and the target's verdict is unknown ({said})"


def _settle_target(links, emit, deadline_s):
    """The target's verdict, asked on fresh sessions until `deadline_s` (the target records
    "aborted" if nothing stands yet): "committed", "aborted", "forgotten" or "unknown"."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            proc = subprocess.run([*links[0], "settle"], capture_output=True, timeout=15)
            answer = json.loads(proc.stdout.decode().strip().splitlines()[-1])
            if "decision" in answer:
                return answer["decision"]
            emit("warning", text=f"target settle: {answer.get('error')}")
        except (subprocess.SubprocessError, ValueError, IndexError, OSError):
            pass
        if time.monotonic() > deadline:
            return "unknown"
        time.sleep(2)


def _remove_source(info, sock, cid, keep, emit):
    """The target committed: the source never runs again. Its restart policy goes first (no
    daemon restart may bring it back), then the container (or, kept, it is killed), retried
    until REMOVE_DEADLINE_S; returns whether that was done."""
    deadline = time.monotonic() + REMOVE_DEADLINE_S
    while True:
        try:
            failpoint(info, "handover.remove-source")
            docker(sock, "update", "--restart=no", cid)
            docker(sock, "kill", cid) if keep else docker(sock, "rm", "-f", cid)
            return True
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            if time.monotonic() > deadline:
                emit("warning", text=f"source not removed yet ({exc}): `whimbrel recover` retries")
                return False
        time.sleep(2)


def _resumed_then_abort_target(sock, cid, links, emit, error, t_freeze):
    """No commit ever left here, so the target cannot commit: its copy, fenced, has answered
    no client. The source resumes at once; then the target is told to drop its copy (one try:
    its receiver drops it by itself when the session ends, and the engine or `recover` settles
    it through the operator's own connection otherwise)."""
    outcome = _resumed(sock, cid, emit, error, t_freeze)
    verdict = _settle_target(links, emit, deadline_s=0)
    if verdict == "committed":  # impossible without our word: say so loudly
        emit("warning", text="the target recorded a commit that was never sent")
    return outcome


def _close_transfer(transfer):
    if transfer is None:
        return
    transfer.close(timeout=10)
    try:
        transfer.session.wait(timeout=30)
    except subprocess.TimeoutExpired:
        transfer.session.kill()


def _resumed(sock, cid, emit, error, t_freeze):
    """The target did not commit: the source runs again, unpaused and every task continued (a
    no-op if never paused; a dump that went wrong can leave tasks stopped behind the pause)."""
    try:
        if _paused(sock, cid):
            docker(sock, "unpause", cid)
        resume_tasks(int(docker(sock, "inspect", "-f", "{{.State.Pid}}", cid)), cid)
    except (RuntimeError, OSError, ValueError) as resume:
        return {"ok": False, "running_on": "nowhere", "error": error, "resume_error": str(resume)}
    emit("resumed")
    clear_criu_lock()
    down = None if t_freeze is None else time.monotonic() - t_freeze
    return {"ok": False, "running_on": "source", "error": error, "frozen_s": down}


def _paused(sock, cid):
    return docker(sock, "inspect", "-f", "{{.State.Paused}}", cid) == "true"


def _reply(session):
    """The receiver's next JSON line, or {"error": ...} when the session ended instead."""
    line = session.stdout.readline()
    if not line:
        code = session.poll()
        return {"error": f"link closed (exit {code})"}
    try:
        return json.loads(line)
    except ValueError:
        return {"error": line.decode(errors="replace")[:300]}


def settle(mig, cid, verdict):
    """Carry out the target's verdict on the source container, for a hand-over its daemon left
    unsettled (or a daemon that died); the outcome is written as the daemon would have."""
    wd = workdir(mig)
    info = _info(wd)
    sock = info["docker_socket"]
    emit = Events(wd)
    if verdict == "committed":
        keep = _read_json(os.path.join(wd, "handover.cfg"), {}).get("keep_source")
        # Failpoints armed for the migration are not recovery's: none here.
        if not _remove_source({}, sock, cid, keep, emit):
            fail("the source container could not be removed")
        outcome = {"ok": True, "running_on": "target", "settled": True}
    elif verdict == "aborted":
        outcome = _resumed(sock, cid, emit, "settled: the target recorded aborted", None)
    else:
        fail(f"bad verdict {verdict!r}")
    _write_json(os.path.join(wd, "handover.json"), outcome)
    out({"outcome": outcome})


def _read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _await_handover(mig, timeout=60):
    """Wait for the migration's hand-over daemon to end (one standing down writes its outcome
    into the work dir as it goes): nothing of the migration may outlive its release."""
    deadline = time.monotonic() + timeout
    while _daemon_alive(mig) and time.monotonic() < deadline:
        time.sleep(0.05)


def _daemon_alive(mig):
    try:
        with open(os.path.join(workdir(mig), "handover.pid")) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return mig.encode() in f.read()  # else that pid is another process now
    except (OSError, ValueError):
        return False


def follow(mig):
    """Stream handover.jsonl to its end; a daemon that died before writing its end gets one
    written for it here (its outcome unsettled: the target's record decides)."""
    path = os.path.join(workdir(mig), "handover.jsonl")
    pos = 0
    last = "fired"
    while True:
        alive = _daemon_alive(mig)  # before reading: a line written after this is read too
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
            out({
                "kind": "end", "ok": False, "running_on": "unknown", "unsettled": True,
                "error": f"the hand-over daemon died (its last step: {last})",
            })  # fmt: skip
            return
        time.sleep(0.05)


def status(mig):
    wd = workdir(mig)
    out({
        "outcome": _read_json(os.path.join(wd, "handover.json"), None),
        "workdir": os.path.isdir(wd),
        "daemon": _daemon_alive(mig),
    })  # fmt: skip


def ship_image(mig, image, link_json):
    """`docker save` here, `docker load` there, straight over the link."""
    sock = _info(workdir(mig))["docker_socket"]

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


def release(mig, cid):
    _await_handover(mig)
    unlock(cid, mig)
    shutil.rmtree(workdir(mig), ignore_errors=True)
    out({"released": mig})


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
