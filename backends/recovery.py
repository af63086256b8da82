"""Settling what an earlier run left pending: a migration whose whimbrel died, whose hand-over
ended unsettled, or whose cleanup was cut short. The target's decision record alone decides
where the container runs; every step here is safe to repeat."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from whimbrel.backends.channel import revoke_link
from whimbrel.backends.config import Node
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.history import read_records, write_record
from whimbrel.backends.hooks import MigrationHooks, hook_env
from whimbrel.backends.node_actions import (
    settle_on_source,
    settle_on_target,
    source_action,
    target_action,
)
from whimbrel.backends.ssh import SessionPool


def this_process(pid: int | None = None) -> dict[str, Any]:
    """Who runs a migration: host, pid and the pid's start time (pids are reused)."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        started = None
    return {"host": socket.gethostname(), "pid": pid, "started": started}


@dataclass(frozen=True)
class Recovery:
    """One unfinished migration, as `recover` found and (if it could) settled it."""

    id: str
    container: str
    src: str
    dst: str
    settled: bool
    running_on: str | None  # None while it cannot be told
    text: str  # for the operator


async def recover(pool: SessionPool) -> list[Recovery]:
    """Settle migrations whose whimbrel died, or whose hand-over ended unsettled (a pending
    record), from the target's decision record: release the lock, revoke the link, and
    rewrite the record. One Recovery per pending migration."""
    found = []
    for record in read_records():
        if record.get("status") != "pending" or "src" not in record:
            continue
        if record.get("owner") == this_process(record.get("owner", {}).get("pid")):
            continue  # its whimbrel is alive (another console, another command): not ours
        ident = (record["id"], record.get("container", "?"), record["src"], record["dst"])
        try:
            text = await _recover_one(pool, record)
        except WhimbrelError as exc:
            text = f"migration {record['id']} of {ident[1]}: could not be settled yet: {exc}"
        settled = record.get("status") != "pending"
        found.append(Recovery(*ident, settled, record.get("running_on") if settled else None, text))
    return found


async def _recover_one(pool: SessionPool, record: dict[str, Any]) -> str:
    """One migration whimbrel left pending: settled from the target's decision record alone.
    The target records "aborted" unless a verdict stands (its copy, fenced until a commit,
    then goes); the source is resumed or removed as the record says."""
    src = pool.config.node(record["src"])
    dst = pool.config.node(record["dst"])
    src_session, dst_session = pool.session(src), pool.session(dst)
    name = record.get("container", "?")
    if record.get("pending_for") == "cleanup":  # settled; only its cleanup was cut short
        if not record.get("ok") and record.get("target_id"):
            await settle_on_target(
                dst_session, record["id"], dst.docker_socket, record["target_id"]
            )
        await _cleanup(pool, src, dst, record)
        record |= {"status": "done" if record.get("ok") else "failed", "pending_for": None}
        write_record(record)
        return (
            f"migration {record['id']} of {name}: its cleanup is finished; "
            f"the container runs on {record.get('running_on')}"
        )
    outcome = None
    if record.get("handover"):
        status = await source_action(src_session, "status", record["id"])
        outcome = status["outcome"]
        if outcome is None and status["daemon"]:
            return (
                f"migration {record['id']} of {name}: the hand-over is still running on {src.name}"
            )
    settled = (
        outcome is not None and not outcome.get("unsettled") and not outcome.get("source_left")
    )
    if record.get("target_id"):
        # The target's record decides, even for an outcome the daemon wrote: what it undid
        # there may not have gone (its dockerd away); either way is safe to repeat.
        verdict = await settle_on_target(
            dst_session, record["id"], dst.docker_socket, record["target_id"]
        )
        if record.get("handover") and not settled:
            if verdict == "forgotten":
                raise WhimbrelError(f"{dst.name} holds no decision record for it: check both")
            outcome = await settle_on_source(
                src_session,
                record["id"],
                record.get("container_id", ""),
                "committed" if verdict == "committed" else "aborted",
            )
    await _cleanup(pool, src, dst, record)
    ok = bool(outcome and outcome.get("ok"))
    where = (outcome or {}).get("running_on", "source")
    running_on = {"source": src.name, "target": dst.name}.get(where, where)
    hooks_said = await _hooks_left(pool, record, src, dst, running_on)
    record |= {
        "status": "done" if ok else "failed",
        "ok": ok,
        "running_on": running_on,
        "downtime_s": (outcome or {}).get("downtime_s", record.get("downtime_s")),
        "error": None
        if ok
        else (outcome or {}).get("error", "whimbrel stopped before the final round; rolled back"),
        "recovered_at": time.time(),
        "pending_for": None,
        "handover_result": outcome,
    }
    write_record(record)
    verdict_text = "finished" if record["ok"] else "did not finish"
    return (
        f"migration {record['id']} of {name} ({src.name} -> {dst.name}) {verdict_text} while "
        f"whimbrel was away: the container runs on {running_on}{hooks_said}"
    )


async def _hooks_left(
    pool: SessionPool, record: dict[str, Any], src: Node, dst: Node, running_on: str
) -> str:
    """The hooks a dead whimbrel may not have run: commit where the target took the
    container, abort where it stayed (its before_freeze may have run). Hooks are written to
    be repeated (they set a state), so running one again is safe. What they said, as text."""
    names = record.get("hook_names") or []
    event = {dst.name: "commit", src.name: "abort"}.get(running_on)
    if not names or event is None:
        return ""
    gone = [n for n in names if n not in pool.config.hooks]
    container = str(record.get("container", "?")).rpartition("/")[2]
    hooks = MigrationHooks(
        [pool.config.hooks[n] for n in names if n in pool.config.hooks],
        hook_env(record["id"], container, src, dst),
    )
    runs = await hooks.run(event)
    record["hooks"] = [*record.get("hooks", []), *map(asdict, runs)]
    write_record(record)
    said = [run.summary() for run in runs]
    said += [f"hook {n}: no longer in the config, not run" for n in gone]
    return "; " + "; ".join(said) if said else ""


async def _cleanup(pool: SessionPool, src: Node, dst: Node, record: dict[str, Any]) -> None:
    """What a migration leaves until it is settled, removed (each step safe to repeat)."""
    await source_action(pool.session(src), "release", record["id"], record.get("container_id", ""))
    link = record.get("link")
    if link:
        await revoke_link(pool, src, dst, link["id"], link["src_dir"], link["dst_dir"])
    if record.get("target_id"):
        await target_action(pool.session(dst), "forget", record["id"])
