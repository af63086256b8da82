"""Running host commands for the lab: argument lists only (never a shell string), errors kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from whimbrel.backends.errors import WhimbrelError

# runc finds CRIU on PATH; the set-up script installs CRIU >= 4.2 into /usr/local/sbin.
LAB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(WhimbrelError):
    """A lab step failed; the message names the step and what the command said."""


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 60,
    netns: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command (inside a node's network namespace when `netns` is given)."""
    full = [str(a) for a in argv]
    if netns is not None:
        full = ["nsenter", f"--net=/run/netns/{netns}", *full]
    try:
        proc = subprocess.run(
            full,
            input=input,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "PATH": LAB_PATH},
        )
    except FileNotFoundError:
        raise LabError(f"{full[0]}: not installed (run `make setup` as root)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(full)}: no answer after {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise LabError(f"{' '.join(full)}: exit {proc.returncode}: {' / '.join(lines[-3:])}")
    return proc


def docker(
    docker_host: str,
    *args: str,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """The Docker CLI against the node engine at `docker_host` (a unix:// URL)."""
    return run(
        ["/usr/bin/docker", "-H", docker_host, *args], input=input, check=check, timeout=timeout
    )


def spawn(
    argv: Sequence[str | os.PathLike[str]], *, log: Path, netns: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running daemon detached from us (own session), output to `log`."""
    full = [str(a) for a in argv]
    if netns is not None:
        full = ["nsenter", f"--net=/run/netns/{netns}", *full]
    with open(log, "ab") as out:
        return subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PATH": LAB_PATH},
        )


def kill_and_wait(
    pids: Iterable[int], timeout: float = 10, sig: signal.Signals = signal.SIGKILL
) -> None:
    """Signal the processes (SIGKILL unless told) and wait until they are gone (zombies of
    others count as gone)."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if _alive(p)}
        if pending:
            time.sleep(0.05)
    if pending:
        raise LabError(f"processes {sorted(pending)} did not exit after {sig.name}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        # Reap our own children; others' zombies are theirs to reap.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise LabError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)
