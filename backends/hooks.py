"""Hooks: the operator's own programs, run at a migration's moments so that its traffic
follows the container (re-point a proxy's server, a DNS record, a floating address).

Which run: the hooks named by the source's cluster, then the target's, then the container's
label `whimbrel.hooks` (names, comma-separated), each once, in that order. A label only names
[hooks.NAME] tables of the config: it comes from a node, and a node's data never becomes a
command. Each runs on the operator's host as an argv (no shell), with the migration in its
environment (WHIMBREL_HOOK_EVENT, WHIMBREL_MIGRATION, WHIMBREL_CONTAINER, and for SOURCE and
TARGET: WHIMBREL_<SIDE>_NODE, _CLUSTER, _HOST as the operator reaches it, _WAN_ADDRESS as the
other clusters do).

  before_freeze  just before the hand-over is fired, the container still serving on its
                 source (e.g. park new connections, drain the ones under way). One attempt;
                 a failure rolls the migration back.
  commit         once the target has committed: the container is the target's now (e.g.
                 point clients at it). Retried; a failure is reported, the migration stands.
  abort          when before_freeze ran and the container stays on its source: put back
                 what it changed. Retried.
Each run's time is reported: before_freeze and commit lie inside what clients see as the
downtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from whimbrel.backends.config import Config, Hook, Node
from whimbrel.backends.errors import UsageError

LABEL = "whimbrel.hooks"
# The pause between a retried hook's attempts, doubling from here.
RETRY_PAUSE_S = 0.5


@dataclass(frozen=True)
class HookRun:
    """One hook run for one event: how long it took, all attempts counted, and its error."""

    hook: str
    event: str
    seconds: float
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_json(cls, data: Any) -> HookRun | None:
        """A run as a record holds it; None for anything else."""
        try:
            return cls(
                str(data["hook"]),
                str(data["event"]),
                float(data["seconds"]),
                int(data["attempts"]),
                None if data.get("error") is None else str(data["error"]),
            )
        except (TypeError, KeyError, ValueError):
            return None

    @property
    def level(self) -> str:
        """The log level its summary goes out at."""
        return "info" if self.ok else "error"

    def summary(self) -> str:
        said = f"hook {self.hook} ({self.event}): "
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        if self.ok:
            return f"{said}done in {self.seconds * 1e3:.0f} ms{tries}"
        return f"{said}failed{tries}: {self.error}"


def select_hooks(
    config: Config, src: Node, dst: Node, labels: Mapping[str, str]
) -> tuple[Hook, ...]:
    """The hooks a migration from `src` to `dst` of a container with `labels` runs."""
    names = [*config.clusters[src.cluster].hooks, *config.clusters[dst.cluster].hooks]
    label = labels.get(LABEL, "")
    for name in filter(None, (n.strip() for n in label.split(","))):
        if name not in config.hooks:
            known = ", ".join(config.hooks) or "none"
            raise UsageError(
                f"the container's label {LABEL}={label[:80]!r} names no hook of {config.path} "
                f"({name!r}; hooks: {known})"
            )
        names.append(name)
    hooks = tuple(config.hooks[n] for n in dict.fromkeys(names))
    for hook in hooks:
        if missing := unrunnable(hook):  # said now, not after the rounds
            raise UsageError(f"{config.path}: {missing}")
    return hooks


def unrunnable(hook: Hook) -> str | None:
    """Why one of `hook`'s programs cannot run here (not found, not executable), or None."""
    for event, argv in hook.argv.items():
        if shutil.which(argv[0]) is None:
            return f"hooks.{hook.name}.{event}: {argv[0]}: no such executable on this host"
    return None


def hook_env(migration: str, container: str, src: Node, dst: Node) -> dict[str, str]:
    env = {"WHIMBREL_MIGRATION": migration, "WHIMBREL_CONTAINER": container}
    for side, node in (("SOURCE", src), ("TARGET", dst)):
        env |= {
            f"WHIMBREL_{side}_NODE": node.name,
            f"WHIMBREL_{side}_CLUSTER": node.cluster,
            f"WHIMBREL_{side}_HOST": node.host,
            f"WHIMBREL_{side}_WAN_ADDRESS": node.wan_address or node.host,
        }
    return env


class MigrationHooks:
    """The hooks of one migration, run event by event, their runs kept for its record."""

    def __init__(self, hooks: Iterable[Hook], env: Mapping[str, str]) -> None:
        self.hooks = tuple(hooks)
        self.env = dict(env)
        self.runs: list[HookRun] = []

    def handle(self, event: str) -> tuple[Hook, ...]:
        return tuple(h for h in self.hooks if event in h.argv)

    def ran(self, event: str) -> bool:
        return any(r.event == event for r in self.runs)

    def inside_downtime(self) -> str | None:
        """The hooks' share of what clients wait through: before_freeze (clients parked
        before the container froze) and commit (until they are pointed at the target)."""
        runs = [r for r in self.runs if r.event in ("before_freeze", "commit")]
        if not runs:
            return None
        each = ", ".join(f"{r.event} {r.hook} {r.seconds * 1e3:.0f} ms" for r in runs)
        total = sum(r.seconds for r in runs)
        return f"hooks inside the clients' downtime: {total * 1e3:.0f} ms ({each})"

    async def run(self, event: str) -> list[HookRun]:
        """Every hook handling `event`, in order; before_freeze stops at the first failure."""
        runs: list[HookRun] = []
        for hook in self.handle(event):
            run = await run_hook(hook, event, self.env)
            runs.append(run)
            if not run.ok and event == "before_freeze":
                break
        self.runs.extend(runs)
        return runs


async def run_hook(hook: Hook, event: str, env: Mapping[str, str]) -> HookRun:
    """`hook`'s program for `event`, retried (but before the freeze) until it exits 0."""
    attempts = 1 if event == "before_freeze" else hook.attempts
    started = time.monotonic()
    error: str | None = None
    for attempt in range(1, attempts + 1):
        error = await _run_once(
            hook.argv[event], {**env, "WHIMBREL_HOOK_EVENT": event}, hook.timeout_s
        )
        if error is None:
            break
        if attempt < attempts:
            await asyncio.sleep(RETRY_PAUSE_S * 2 ** (attempt - 1))
    return HookRun(hook.name, event, time.monotonic() - started, attempt, error)


async def _run_once(argv: tuple[str, ...], env: Mapping[str, str], timeout_s: float) -> str | None:
    """None when the program exits 0, else why not: its last line on stderr, its exit status,
    or the timeout (then it and whatever it started are killed)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as exc:
        _kill_group(proc.pid)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return f"{argv[0]} did not finish within {timeout_s:g} s"
    if proc.returncode == 0:
        return None
    said = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    status = f"exit status {proc.returncode}" if proc.returncode > 0 else "killed"
    return f"{argv[0]}: {said[-1][:200]} ({status})" if said else f"{argv[0]}: {status}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
