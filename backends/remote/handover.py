"""The hand-over daemon (standard library only): the final round, detached from the agent
that starts it, to a verdict the target recorded; its events go to MIG/handover.jsonl.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import namedtuple

from engineapi import ask_engine, container_url
from nodelib import docker, resume_tasks
from pagestream import file_trees, load_index, send_images
from runcdump import clear_criu_lock, dump
from transfer import Transfer, close_stripes, next_reply
from wire import failpoint
from workdirs import prepared_info, write_json


def arm_handover(mig, cid, wd, links, cfg):
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
        write_json(os.path.join(wd, "handover.json"), outcome)
    emit("end", **outcome)
    os._exit(0)


def fire_handover(fire):
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


# The outcome of a hand-over whimbrel never fired: the container never stopped.
STOOD_DOWN = {
    "ok": False,
    "running_on": "source",
    "stood_down": True,
    "error": "the hand-over was never fired: whimbrel ended the migration before",
}


def _handover(mig, cid, wd, links, cfg, emit, armed):
    """The final round, to a verdict: the source is resumed only when the target's record says
    aborted or the commit provably never left here; it is removed only when the record says
    committed; anything else leaves it frozen for `whimbrel recover`."""
    sock = cfg["docker_socket"]
    prepared = prepared_info(wd)
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
            return dict(STOOD_DOWN)
        emit("fired")  # from here the lock holds until the outcome is settled
        on_target = load_index(wd)  # what the last round left on the target
        stage = "freeze"
        t_freeze = time.monotonic()
        frozen_at = time.time()  # on the wall clock too, for the target's (below)
        marks = {"freeze": t_freeze}  # when each step of the downtime ended: its parts
        failpoint(prepared, "handover.before-pause")
        ask_engine(sock, "POST", container_url(cid, "pause"), timeout=120)
        frozen = True
        marks["frozen"] = time.monotonic()
        emit("frozen")
        failpoint(prepared, "handover.after-pause")
        stage = "dump"
        # Its page files are compared with the held ones as they land, and the changed pages
        # go ahead on the stream: the send then waits on little but the dump.
        img, dump_s, landed = dump(mig, cid, True, "final", on_target, transfer.stream)
        marks["dumped"] = time.monotonic()
        emit("dumped", dump_s=dump_s)
        failpoint(prepared, "handover.after-dump")
        stage = "send"
        sent = transfer.stream_out(
            lambda stream: send_images(img, None, stream, on_target, file_trees(prepared), landed)
        )
        failpoint(prepared, "handover.after-send")
        stage = "commit"
        _commit_behind_stream(transfer, prepared)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # No commit was sent: the target cannot have committed, whatever it holds.
        error = f"{stage}: {exc}"
        emit("failed", stage=stage, error=error)
        _close_transfer(transfer)
        if not frozen:
            return resumed(sock, cid, emit, error, t_freeze)
        return _resumed_then_abort_target(sock, cid, links, emit, error, t_freeze)
    # From here the target's record alone decides: it says committed once its restore stands.
    restored, answer = _answers(transfer, prepared, links, emit, marks, sent)
    final = FinalRound(img, dump_s, restored, sent, marks)
    outcome = _concluded(answer, final, prepared, cfg, cid, links, emit)
    if answer.served_at:
        # The target's wall clock against this one's: where the two agree (the lab's nodes
        # share one), they check the downtime's end the engine estimates (its parts' answer).
        outcome.update(frozen_at=frozen_at, served_at=answer.served_at)
    return outcome


def _commit_behind_stream(transfer, prepared):
    """The commit, right behind the final round's stream: the target acts on it once its
    restore stands (fenced until then), so it costs no round trip of the downtime; a restore
    that fails records "aborted" instead. RuntimeError when it cannot leave (the session
    gone): the target cannot commit then."""
    session = transfer.session
    if "drop-final-link" in prepared.get("failpoints", {}):
        session.kill()
        session.wait()  # its pipe closed: the word cannot leave
    try:
        session.stdin.write(b"commit\n")
        session.stdin.close()  # flushes: past this line the word may have reached the target
    except OSError as exc:
        raise RuntimeError(f"the commit could not be sent ({exc})") from None


def _answers(transfer, prepared, links, emit, marks, sent):
    """The target's answers once the commit went: its restore's ({} if none came), then the
    verdict it recorded (an Answer, asked for again on fresh sessions if its answer is lost)."""
    stripe_error = close_stripes(transfer.stripes)
    marks["sent"] = time.monotonic()
    emit(
        "sent",
        state_bytes=sent.state_bytes,
        sent_bytes=sent.sent_bytes,
        send_s=marks["sent"] - marks["dumped"],
    )
    session, restored = transfer.session, {}
    reply = next_reply(session)
    if reply.get("restored"):
        restored = reply
        marks["restored"] = time.monotonic()
        emit(
            "restored",
            restore_s=reply.get("restore_s"),
            lazy=bool(reply.get("lazy")),
            state_bytes=sent.state_bytes,
            sent_bytes=sent.sent_bytes,
        )
        failpoint(prepared, "handover.after-restore")
        reply = next_reply(session)
    elif stripe_error and "decision" not in reply:
        reply = {"error": f"{reply.get('error', 'no answer')} ({stripe_error})"}
    answer = _verdict(session, reply, links, emit)
    return restored or answer.restored or {}, answer


# What the final round measured up to the commit, for the hand-over's outcome: `restored` is
# the target's answer to it, `sent` send_images' Sent, `marks` when each step of the downtime
# ended (monotonic clock).
FinalRound = namedtuple("FinalRound", "img dump_s restored sent marks")


def downtime_parts(marks, diff_s, resume_s, t_serving, restore_s=None):
    """The downtime split at the marks, so that the parts add up to it: the diff runs inside
    the send's window, and the target's resume (its own clock) inside the commit's. The
    restore is the target's own time for it (`restore_s`, its clock) where it said: the
    source's "sent" mark waits for the stripes' sessions to end, a round trip the target does
    not wait for, and its "restored" for the answer's way back, which the send then holds
    with the stream's way there; without it, what the source waited between the two. With no
    answer to the restore (lost, the verdict learnt later) it all counts as restore."""
    restored = marks.get("restored", t_serving)
    after_dump = restored - marks["dumped"]
    diff = min(diff_s, marks["sent"] - marks["dumped"])
    restore = restored - marks["sent"] if restore_s is None else min(restore_s, after_dump - diff)
    commit = t_serving - restored
    resume = min(resume_s or 0.0, commit)
    return {
        "freeze_s": marks["frozen"] - marks["freeze"],
        "dump_s": marks["dumped"] - marks["frozen"],
        "diff_s": diff,
        "send_s": after_dump - diff - restore,
        "restore_s": restore,
        "commit_s": commit - resume,
        "resume_s": resume,
    }


def _concluded(answer, final, prepared, cfg, cid, links, emit):
    """The outcome once the commit went: the source removed on "committed", resumed on
    "aborted", anything else left frozen."""
    sock = cfg["docker_socket"]
    marks, sent = final.marks, final.sent
    verdict, why = answer.verdict, answer.why
    if verdict == "committed":
        # The target served before it answered; the source's clock stops at its answer.
        t_serving = answer.answered or time.monotonic()
        lazy_why = final.restored.get("lazy_unavailable")  # asked for, not possible there
        emit("committed")
        shutil.rmtree(final.img, ignore_errors=True)
        shutil.rmtree(final.img + ".work", ignore_errors=True)
        removed = remove_source(prepared, sock, cid, cfg.get("keep_source"), emit)
        return {
            "ok": True,
            "running_on": "target",
            "downtime_s": t_serving - marks["freeze"],
            "parts": downtime_parts(
                marks, sent.diff_s, answer.resume_s, t_serving, final.restored.get("restore_s")
            ),
            "dump_s": final.dump_s,
            "send_s": t_serving - marks["dumped"],
            "restore_s": final.restored.get("restore_s"),
            "criu_restore_s": final.restored.get("criu_restore_s"),  # CRIU's own share of it
            "lazy_restore": bool(final.restored.get("lazy")),
            **({"lazy_unavailable": lazy_why} if lazy_why else {}),
            "state_bytes": sent.state_bytes,
            "sent_bytes": sent.sent_bytes,
            "stripes": len(links),
            **({} if removed else {"source_left": True}),
        }
    emit("failed", stage="commit", error=why)
    if verdict == "aborted":
        return resumed(sock, cid, emit, why, marks["freeze"])
    return {
        "ok": False,
        "running_on": "unknown",
        "unsettled": True,
        "error": f"{why}; the source stays frozen (paused), never resumed on a guess: "
        "`whimbrel recover` settles it once the target answers",
        "dump_s": final.dump_s,
        "state_bytes": sent.state_bytes,
        "sent_bytes": sent.sent_bytes,
        "stripes": len(links),
    }


# The target's verdict on the commit and why; when the target answered "committed" itself,
# the seconds it took to resume its copy, when its answer came (monotonic) and when it served
# (its wall clock); learnt by asking again, the restore's answer the target kept (the first
# may have been lost).
Answer = namedtuple(
    "Answer", "verdict why resume_s answered restored served_at", defaults=(None,) * 4
)


def _verdict(session, reply, links, emit):
    """The verdict the target recorded, from its answer `reply` (after the restore's): an
    Answer. An answer lost, the target is asked on fresh sessions: the commit may have reached
    it, so the source resumes only on its record's word."""
    answered = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        session.wait(timeout=10)  # the receiver tidies after its answer (its checkpoint)
    if reply.get("warning"):
        emit("warning", text=f"target: {reply['warning']}")
    if reply.get("committed"):
        resume_s, served_at = reply.get("resume_s"), reply.get("served_at")
        return Answer("committed", "committed", resume_s, answered, served_at=served_at)
    if "decision" in reply:
        # Refused (its restore failed: its error) or recorded before the commit came.
        why = reply.get("error") or reply.get("why") or reply["decision"]
        return Answer(reply["decision"], f"target: {why}")
    why = reply.get("error", "no answer")
    emit("warning", text=f"commit sent, no answer ({why}): asking the target")
    settled = _settle_target(links, emit, deadline_s=DECIDE_DEADLINE_S)
    verdict, restored = settled["decision"], settled.get("restored") or {}
    if verdict in ("committed", "aborted"):
        why = f"commit: the target recorded {verdict} (its answer was lost: {why})"
        return Answer(verdict, why, restored=restored)
    return Answer("unknown", f"commit: sent, and the target's verdict is unknown ({why})")


def _settle_target(links, emit, deadline_s):
    """The target's answer to `settle`, asked on fresh sessions until `deadline_s` (the target
    records "aborted" if nothing stands yet): its "decision" ("committed", "aborted",
    "forgotten", or "unknown" when none came) and the restore's answer it kept ("restored")."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            proc = subprocess.run([*links[0], "settle"], capture_output=True, timeout=15)
            answer = json.loads(proc.stdout.decode().strip().splitlines()[-1])
            if "decision" in answer:
                return answer
            emit("warning", text=f"target settle: {answer.get('error')}")
        except (subprocess.SubprocessError, ValueError, IndexError, OSError):
            pass
        if time.monotonic() > deadline:
            return {"decision": "unknown"}
        time.sleep(2)


def remove_source(prepared, sock, cid, keep, emit):
    """The target committed: the source never runs again. Its restart policy goes first (no
    daemon restart may bring it back), then the container (or, kept, it is killed), retried
    until REMOVE_DEADLINE_S; returns whether that was done."""
    deadline = time.monotonic() + REMOVE_DEADLINE_S
    while True:
        try:
            failpoint(prepared, "handover.remove-source")
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
    outcome = resumed(sock, cid, emit, error, t_freeze)
    verdict = _settle_target(links, emit, deadline_s=0)["decision"]
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


def resumed(sock, cid, emit, error, t_freeze):
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
