"""whimbrel node helper for the SOURCE node of a migration (standard library only).

  prepare MIG CID SOCK          lock the container (one migration at a time, held on this node),
                                make the migration's work dir, find runc's root and the
                                container's writable layer; prints them
  round MIG CID N LINK          pre-copy round N: `runc checkpoint --leave-running` (a short
                                freeze), then send only the pages the target does not hold yet
  handover MIG CID LINK CFG     the final round, DETACHED from the operator: freeze, dump, send,
                                restore on the target, commit; on any failure resume the source
                                and undo the target. It writes events to MIG/handover.jsonl, so
                                it finishes (or undoes) the hand-over even if whimbrel dies.
  follow MIG                    stream handover.jsonl until its end
  status MIG                    the hand-over's outcome, if any
  ship-image MIG IMAGE LINK     `docker save` piped to the target's `docker load`
  release MIG CID               drop the lock and the work dir (after the outcome is known)

Images go as a stream of files; for CRIU's pages-*.img, page by page (4 KiB): a page whose
SHA-1 the target already holds from the previous round is sent as a copy instruction, so each
round sends only what changed (SHA-1 is for identity against accident here: a forged collision
could only corrupt the forger's own memory).
"""

import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

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


def lock(mig, cid):
    os.makedirs(LOCKS, mode=0o700, exist_ok=True)
    path = os.path.join(LOCKS, cid)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        try:
            with open(os.path.join(path, "owner")) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            owner = {}
        other = owner.get("migration", "?")
        if not _stale(other):
            fail(
                "container is already being migrated (migration {}, since {})".format(
                    other, time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0)))
                )
            )
        shutil.rmtree(path, ignore_errors=True)
        os.mkdir(path, 0o700)
    with open(os.path.join(path, "owner"), "w") as f:
        json.dump({"migration": mig, "since": time.time(), "pid": os.getpid()}, f)


def _stale(mig):
    """A lock is stale once its migration's outcome is written or its work dir is gone."""
    wd = os.path.join(BASE, mig)
    return not os.path.isdir(wd) or os.path.exists(os.path.join(wd, "handover.json"))


def unlock(cid, mig):
    path = os.path.join(LOCKS, cid)
    try:
        with open(os.path.join(path, "owner")) as f:
            if json.load(f).get("migration") != mig:
                return
    except (OSError, ValueError):
        return
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ images over the link

OP_DATA, OP_COPY_PREV, OP_COPY_CUR, OP_END = b"D", b"P", b"C", b"E"


def load_index(wd):
    """{sha1: (name, offset)} of the pages the target holds from the previous round."""
    index = {}
    try:
        with open(os.path.join(wd, "index.json")) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return index, {}
    for name, _entry in names.items():
        if name.startswith("pages-"):
            with open(os.path.join(wd, "index-" + name), "rb") as f:
                digests = f.read()
            for i in range(0, len(digests), 20):
                index.setdefault(digests[i : i + 20], (name, (i // 20) * PAGE))
    return index, names


def send_images(img_dir, wd, stream, index, prev_files, layer_dir=None):
    """Write the round's images (and the writable layer, when given) to `stream`; returns
    (bytes of state, bytes sent)."""
    state = sent = 0
    files = {}
    for name in sorted(os.listdir(img_dir)):
        path = os.path.join(img_dir, name)
        if not os.path.isfile(path) or name.endswith(".log"):
            continue
        with open(path, "rb") as f:
            data = f.read()
        state += len(data)
        header = json.dumps({"name": name, "size": len(data)}).encode()
        stream.write(struct.pack(">I", len(header)) + header)
        sha = hashlib.sha1(data).hexdigest()
        files[name] = sha
        if not name.startswith("pages-"):
            if prev_files.get(name) == sha:
                stream.write(OP_COPY_PREV + _name_ref(name, 0, len(data)))
            else:
                stream.write(OP_DATA + struct.pack(">Q", len(data)) + data)
                sent += len(data)
            stream.write(OP_END)
            continue
        view = memoryview(data)
        digests = bytearray()
        seen = {}
        run = None  # a pending run: [op, src name, src offset, length, start]

        for pos in range(0, len(data), PAGE):
            page = view[pos : pos + PAGE]
            d = hashlib.sha1(page).digest()
            digests += d
            if d in index:
                op, (src, off) = OP_COPY_PREV, index[d]
            elif d in seen:
                op, src, off = OP_COPY_CUR, name, seen[d]
            else:
                op, src, off = OP_DATA, None, None
                seen[d] = pos
            if (
                run
                and run[0] == op
                and (op == OP_DATA or (run[1] == src and run[2] + run[3] == off))
            ):
                run[3] += len(page)
            else:
                if run:
                    sent += _flush(stream, view, run)
                run = [op, src, off, len(page), pos]
        if run:
            sent += _flush(stream, view, run)
        stream.write(OP_END)
        with open(os.path.join(wd, "index-" + name + ".new"), "wb") as f:
            f.write(digests)
    if layer_dir is not None:
        header = json.dumps({"name": "@layer"}).encode()
        stream.write(struct.pack(">I", len(header)) + header)
        sent += tar_stream(layer_dir, stream)
        stream.write(OP_END)
    stream.write(struct.pack(">I", 0))
    stream.flush()
    # What the target now holds is this round's set: it becomes the next round's index.
    for name in files:
        if name.startswith("pages-"):
            os.replace(
                os.path.join(wd, "index-" + name + ".new"), os.path.join(wd, "index-" + name)
            )
    with open(os.path.join(wd, "index.json"), "w") as f:
        json.dump(files, f)
    return state, sent


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


def run_link(link_argv, action, feed):
    """Run the receiver's `action` over the link, feeding its stdin; returns its JSON answer."""
    proc = subprocess.Popen(
        [*link_argv, action], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1 << 20
    )
    try:
        result = feed(proc.stdin)
        proc.stdin.close()
    except BrokenPipeError:
        result = None
    answer = proc.stdout.read().decode(errors="replace").strip().splitlines()
    code = proc.wait()
    reply = {}
    if answer:
        try:
            reply = json.loads(answer[-1])
        except ValueError:
            reply = {"error": answer[-1][:300]}
    if code != 0 or "error" in reply:
        raise RuntimeError("target: " + reply.get("error", f"link failed (exit {code})"))
    return result, reply


def dump(mig, cid, leave_running, dirname):
    wd = workdir(mig)
    with open(os.path.join(wd, "prepare.json")) as f:
        info = json.load(f)
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
    """CRIU's network lock must never outlive a failed dump: it black-holes the node."""
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


# ------------------------------------------------------------------ actions


def prepare(mig, cid, sock):
    wd = workdir(mig)
    lock(mig, cid)
    try:
        os.makedirs(wd, mode=0o700, exist_ok=True)
        runc_root = find_runc_root(cid)
        if runc_root is None:
            fail(f"runc state of container {cid[:12]} not found (is it running?)")
        upper = docker(sock, "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", cid)
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
            "docker_socket": sock,
            "criu": criu.split()[1] if criu else None,
            "soft_dirty": soft_dirty,
            "free_bytes": _free(BASE),
        }
        with open(os.path.join(wd, "prepare.json"), "w") as f:
            json.dump(info, f)
    except (RuntimeError, OSError) as exc:
        unlock(cid, mig)
        fail(str(exc))
    out(info)


def _free(path):
    st = os.statvfs(path if os.path.exists(path) else "/")
    return st.f_bavail * st.f_frsize


def pre_round(mig, cid, number, link_json):
    wd = workdir(mig)
    link_argv = json.loads(link_json)
    with open(os.path.join(wd, "prepare.json")) as f:
        upper = json.load(f)["upper_dir"]
    # The writable layer goes with round 0, and again whole with the final round.
    layer_dir = upper if int(number) == 0 else None
    try:
        img, dump_s = dump(mig, cid, True, f"round-{number}")
        index, prev = load_index(wd)
        t0 = time.monotonic()
        (state, sent), _reply = run_link(
            link_argv,
            f"recv {int(number)}",
            lambda stream: send_images(img, wd, stream, index, prev, layer_dir),
        )
        send_s = time.monotonic() - t0
        shutil.rmtree(img, ignore_errors=True)
        shutil.rmtree(img + ".work", ignore_errors=True)
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    out(
        {
            "dump_s": dump_s,
            "freeze_s": dump_s,
            "send_s": send_s,
            "state_bytes": state,
            "sent_bytes": sent,
        }
    )


class Events:
    """handover.jsonl: the detached hand-over's log, which `follow` streams to the engine."""

    def __init__(self, wd):
        self.path = os.path.join(wd, "handover.jsonl")
        self.t0 = time.monotonic()

    def __call__(self, kind, **fields):
        fields.update({"kind": kind, "t": time.monotonic() - self.t0, "wall": time.time()})
        with open(self.path, "a") as f:
            f.write(json.dumps(fields) + "\n")
            f.flush()
            os.fsync(f.fileno())


def handover(mig, cid, link_json, cfg_json):
    """Daemonize, then run the final round to its end whatever happens to the caller."""
    wd = workdir(mig)
    cfg = json.loads(cfg_json)
    if os.fork():
        out({"detached": True})
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with open(os.path.join(wd, "handover.pid"), "w") as f:
        f.write(str(os.getpid()))
    emit = Events(wd)
    outcome = _handover(mig, cid, wd, json.loads(link_json), cfg, emit)
    with open(os.path.join(wd, "handover.json.new"), "w") as f:
        json.dump(outcome, f)
    os.replace(os.path.join(wd, "handover.json.new"), os.path.join(wd, "handover.json"))
    emit("end", **outcome)
    os._exit(0)


def _handover(mig, cid, wd, link_argv, cfg, emit):
    sock = cfg["docker_socket"]
    index, prev = load_index(wd)  # before the freeze: none of this is downtime
    with open(os.path.join(wd, "prepare.json")) as f:
        upper = json.load(f)["upper_dir"]
    frozen = restored = False
    t_freeze = session = None
    stage = "freeze"
    try:
        t_freeze = time.monotonic()
        docker(sock, "pause", cid)
        frozen = True
        emit("frozen")
        stage = "dump"
        img, dump_s = dump(mig, cid, True, "final")
        emit("dumped", dump_s=dump_s)
        stage = "send"
        t_send = time.monotonic()
        session = subprocess.Popen(
            [*link_argv, "recv final"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        state, sent = send_images(img, wd, session.stdin, index, prev, upper)
        session.stdin.flush()
        emit("sent", state_bytes=state, sent_bytes=sent, send_s=time.monotonic() - t_send)
        stage = "restore"
        reply = _reply(session)
        send_s = time.monotonic() - t_send
        if not reply.get("restored"):
            raise RuntimeError("target: " + reply.get("error", "no answer to the final round"))
        restored = True
        t_serving = time.monotonic()
        emit("restored", restore_s=reply.get("restore_s"), state_bytes=state, sent_bytes=sent)
        stage = "commit"
        session.stdin.write(b"commit\n")
        session.stdin.close()
        if not _reply(session).get("committed"):
            state_now = _target_state(link_argv)
            if state_now == "unknown":
                # The commit may or may not have landed: resuming here could run the
                # container twice. Stay frozen and say so; the operator decides.
                emit("failed", stage=stage, error="commit unconfirmed, target unreachable")
                return {
                    "ok": False,
                    "running_on": "unknown",
                    "frozen": True,
                    "error": "commit: the target did not confirm and cannot be reached; "
                    "the source is kept frozen (paused), check the target",
                }
            if state_now != "committed":
                raise RuntimeError(f"target did not commit ({state_now})")
        session.wait()
        # The target serves and has committed: now, and only now, the source goes.
        if cfg.get("keep_source"):
            docker(sock, "kill", cid)
        else:
            docker(sock, "rm", "-f", cid)
        frozen = False
        shutil.rmtree(img, ignore_errors=True)
        shutil.rmtree(img + ".work", ignore_errors=True)
        return {
            "ok": True,
            "running_on": "target",
            "downtime_s": t_serving - t_freeze,
            "dump_s": dump_s,
            "send_s": send_s,
            "restore_s": reply.get("restore_s"),
            "state_bytes": state,
            "sent_bytes": sent,
        }
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        error = f"{stage}: {exc}"
        emit("failed", stage=stage, error=error)
        if session is not None and session.poll() is None:
            # No commit: closing the session makes the receiver undo any restore.
            with contextlib.suppress(OSError):
                session.stdin.close()
            try:
                session.wait(timeout=30)
            except subprocess.TimeoutExpired:
                session.kill()
        if restored:
            # Make sure the target is undone before the source resumes: never two copies.
            try:
                run_link(link_argv, "abort", lambda s: None)
            except RuntimeError as undo:
                emit("warning", text=f"target abort: {undo}")
        if frozen:
            try:
                docker(sock, "unpause", cid)
            except RuntimeError as resume:
                return {
                    "ok": False,
                    "running_on": "nowhere",
                    "error": error,
                    "resume_error": str(resume),
                }
            emit("resumed")
        clear_criu_lock()
        down = None if t_freeze is None else time.monotonic() - t_freeze
        return {"ok": False, "running_on": "source", "error": error, "frozen_s": down}


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


def _target_state(link_argv):
    """Ask the receiver, on a fresh session, whether it committed (the reply may be lost)."""
    for _ in range(5):
        try:
            proc = subprocess.run([*link_argv, "status"], capture_output=True, timeout=15)
            return json.loads(proc.stdout.decode().strip().splitlines()[-1])["state"]
        except (subprocess.SubprocessError, ValueError, IndexError, KeyError, OSError):
            time.sleep(2)
    return "unknown"


def follow(mig):
    path = os.path.join(workdir(mig), "handover.jsonl")
    pos = 0
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                f.seek(pos)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    pos += len(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    if json.loads(line).get("kind") == "end":
                        return
        except FileNotFoundError:
            pass
        time.sleep(0.05)


def status(mig):
    path = os.path.join(workdir(mig), "handover.json")
    try:
        with open(path) as f:
            out({"outcome": json.load(f)})
    except FileNotFoundError:
        out({"outcome": None, "workdir": os.path.isdir(workdir(mig))})


def ship_image(mig, image, link_json):
    """`docker save` here, `docker load` there, straight over the link."""
    with open(os.path.join(workdir(mig), "prepare.json")) as f:
        sock = json.load(f)["docker_socket"]

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
        total, _ = run_link(json.loads(link_json), "load-image", feed)
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    out({"bytes": total})


def release(mig, cid):
    unlock(cid, mig)
    shutil.rmtree(workdir(mig), ignore_errors=True)
    out({"released": mig})


if __name__ == "__main__":
    actions = {
        "prepare": prepare,
        "round": pre_round,
        "handover": handover,
        "follow": follow,
        "status": status,
        "release": release,
        "ship-image": ship_image,
    }
    actions[sys.argv[1]](*sys.argv[2:])
