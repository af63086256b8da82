"""SSH to the nodes: one asyncssh connection per node, reused for everything.

Every connection has a connect timeout and keepalives (asyncssh has neither by default, and a
lost peer would hang a read for ever), reconnects with backoff after a loss, and caps how many
channels it opens at once (OpenSSH allows 10 sessions per connection). The pool caps how many
connections are being set up at once (OpenSSH drops unauthenticated logins beyond 10).

Host keys are always verified against known_hosts: the config's file, else ~/.ssh/known_hosts,
always named to asyncssh, since an explicit option beats ~/.ssh/config's UserKnownHostsFile and
`UserKnownHostsFile none` there would turn the check off. The rest of ~/.ssh/config (host name,
user, ProxyJump) is respected; a connection it would still leave unchecked (a jump host reached
with checking off) is refused. An unknown or changed key is refused with a message naming the
host and the key's fingerprint; nothing is ever accepted silently.
Commands are argument lists quoted with shlex: no shell string is ever built from data.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from whimbrel.backends.config import Config, Node
from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.node_scripts import remote_script

MAX_JUMPS = 8  # ProxyJump hops followed when checking them: a longer chain is a config's loop
KEEPALIVE_INTERVAL_S = 5.0
KEEPALIVE_COUNT_MAX = 3
MAX_CHANNELS = 8  # sessions (commands): OpenSSH's MaxSessions is 10
MAX_STREAMS = 16  # forwarded socket streams (Docker API calls) are not sessions
MAX_CONCURRENT_CONNECTS = 8
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# A node helper's line that says how far a long answer got (remote/progress.py).
PROGRESS = "progress"
CONVERSATION_END_S = 60.0  # a helper told to end (its stdin closed) ends within this


class NodeUnreachable(WhimbrelError):
    """A node could not be reached or dropped its connection; the message says which and why."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"{node}: {reason}")
        self.node = node
        self.reason = reason


class HostKeyRefused(NodeUnreachable):
    """The node's host key is unknown or changed, or it (or a jump host on the way) would not
    be checked: refused, never accepted silently."""


class SudoRefused(WhimbrelError):
    """A node with `become = "sudo"` whose sudo asked for a password (or refused)."""

    def __init__(self, node: Node, said: str) -> None:
        user = node.ssh_user or "the SSH user"
        self.said = f"sudo -n as {user}: {said}"
        self.remedy = f"give {user} passwordless sudo (NOPASSWD in sudoers), or connect as root"
        super().__init__(f"{node.name}: {self.said}: {self.remedy}")


def sudo_refusal(node: Node, stderr: str) -> SudoRefused | None:
    """What `sudo -n` said when it would not run the command, if it would not."""
    if node.become:
        for line in stderr.splitlines():
            if line.startswith("sudo: "):
                return SudoRefused(node, line.removeprefix("sudo: ").strip())
    return None


class CommandFailed(WhimbrelError):
    def __init__(self, node: str, argv: Sequence[str], code: int | None, stderr: str) -> None:
        last_line = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
        super().__init__(f"{node}: {argv[0]} exited {code}: {last_line}")
        self.node = node
        self.code = code
        self.stderr = stderr


@dataclass(frozen=True)
class Completed:
    stdout: bytes
    stderr: bytes
    code: int | None

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


class NodeSession:
    """The one connection to one node. Safe to share between tasks."""

    def __init__(self, node: Node, config: Config, connect_gate: asyncio.Semaphore) -> None:
        self.node = node
        self._config = config
        self._connect_gate = connect_gate
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self._streams = asyncio.Semaphore(MAX_STREAMS)
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None

    def command(self, argv: Sequence[str]) -> str:
        """The command line for `argv` (quoted here), run as root through `sudo -n` on a node
        with `become = "sudo"` (never asking for a password: refused at once instead)."""
        if self.node.become == "sudo":
            argv = ["sudo", "-n", "--", *argv]
        return shlex.join(argv)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def _known_hosts(self) -> Path:
        """The file host keys are checked against: the config's, else ~/.ssh/known_hosts."""
        return self._config.known_hosts or Path("~/.ssh/known_hosts").expanduser()

    def _options(self) -> dict:
        node, config = self.node, self._config
        options: dict = {
            "host": node.host,
            "port": node.port,
            "known_hosts": str(self._known_hosts()),
            "connect_timeout": config.connect_timeout_s,
            "login_timeout": config.connect_timeout_s * 2,
            "keepalive_interval": KEEPALIVE_INTERVAL_S,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        }
        if node.ssh_user:
            options["username"] = node.ssh_user
        if node.identity_file:
            options["client_keys"] = [str(node.identity_file)]
        return options

    async def _refuse_unchecked(self) -> None:
        """Raise HostKeyRefused for a connection asyncssh would make without checking the host
        key, reading the options as asyncssh.connect does (config=(): with ~/.ssh/config; the
        options class alone reads no config)."""
        options = await asyncssh.SSHClientConnectionOptions.construct(config=(), **self._options())
        if options.known_hosts is None:
            raise HostKeyRefused(
                self.node.name,
                f"{self.node.address} would be reached without checking its host key; refusing "
                "to connect",
            )
        hop = await _unchecked_jump(options.tunnel)
        if hop:
            raise HostKeyRefused(
                self.node.name,
                f"the jump host {hop} (ProxyJump in ~/.ssh/config) would be reached without "
                "checking its host key (UserKnownHostsFile none); refusing to connect through it",
            )
        if not self._known_hosts().is_file():
            # No key can be trusted, and asyncssh's failure to open the file would read as
            # the node being unreachable.
            raise await self._host_key_refused()

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, (re)connecting with backoff when there is none."""
        if self.connected:
            assert self._conn is not None
            return self._conn
        async with self._lock:
            if self.connected:
                assert self._conn is not None
                return self._conn
            now = time.monotonic()
            if now < self._retry_at and self.last_error:
                raise NodeUnreachable(self.node.name, self.last_error)
            async with self._connect_gate:
                try:
                    await self._refuse_unchecked()
                    self._conn = await asyncssh.connect(**self._options())
                except HostKeyRefused as exc:
                    error: NodeUnreachable = exc
                except asyncssh.HostKeyNotVerifiable:
                    error = await self._host_key_refused()
                except (TimeoutError, OSError, asyncssh.Error) as exc:
                    error = NodeUnreachable(self.node.name, _describe(exc, self.node))
                else:
                    self._failures = 0
                    self.last_error = None
                    return self._conn
            self._conn = None
            self.last_error = error.reason
            self._retry_at = time.monotonic() + BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
            self._failures += 1
            raise error

    async def _host_key_refused(self) -> HostKeyRefused:
        node = self.node
        known_hosts = self._known_hosts()
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(node.host, node.port),
                self._config.connect_timeout_s,
            )
        except (TimeoutError, OSError, asyncssh.Error):
            key = None
        shown = fingerprint(key) if key else "(could not be read)"
        try:
            trusted = asyncssh.read_known_hosts(str(known_hosts)).match(
                node.host, node.host, node.port
            )[0]
        except (OSError, ValueError):
            trusted = []
        if trusted:
            what = (
                f"host key CHANGED: {node.address} now presents {shown}, but {known_hosts} "
                f"trusts {', '.join(fingerprint(k) for k in trusted)}; refusing to connect "
                "(if the change is expected, replace the entry after checking the key)"
            )
        else:
            what = (
                f"host key unknown: {node.address} presents {shown}, which is not in "
                f"{known_hosts}; refusing to connect (check the fingerprint, then add it)"
            )
        return HostKeyRefused(node.name, what)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None

    @asynccontextmanager
    async def channel(self, kind: str = "session") -> AsyncIterator[asyncssh.SSHClientConnection]:
        """A connection to open one channel on, within the connection's cap for its kind."""
        conn = await self.connection()
        async with self._channels if kind == "session" else self._streams:
            try:
                yield conn
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError) as exc:
                # ConnectionError: a peer that vanished mid-read can surface as the socket's
                # own reset (errno 104) rather than as asyncssh's ConnectionLost.
                self._conn = None
                raise NodeUnreachable(self.node.name, f"connection lost: {exc}") from exc
            except asyncssh.ChannelOpenError as exc:
                # A channel asked for on a connection that has just dropped fails this way
                # ("SSH connection closed"), not as a lost connection; the next use reconnects.
                raise NodeUnreachable(self.node.name, f"no channel: {exc.reason}") from exc

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 60,
        check: bool = True,
    ) -> Completed:
        """Run a command (an argument list, quoted here) on the node."""
        command = self.command(argv)
        async with self.channel() as conn:
            try:
                result = await asyncio.wait_for(
                    conn.run(command, input=input, encoding=None, check=False), timeout
                )
            except TimeoutError:
                raise NodeUnreachable(
                    self.node.name, f"{argv[0]} gave no answer within {timeout:.0f} s"
                ) from None
        done = Completed(
            bytes(result.stdout or b""), bytes(result.stderr or b""), result.exit_status
        )
        if done.code != 0 and (refused := sudo_refusal(self.node, done.stderr.decode())):
            raise refused
        if check and done.code != 0:
            raise CommandFailed(
                self.node.name, argv, done.code, done.stderr.decode(errors="replace")
            )
        return done

    async def run_python(
        self,
        script: str,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 60,
        check: bool = True,
    ) -> Completed:
        """Run a standard-library Python script on the node, as Ansible does: nothing of ours
        is installed there. The script travels in argv, leaving stdin free for data."""
        return await self.run(
            ["python3", "-c", script, *args], input=input, timeout=timeout, check=check
        )

    async def run_helper(
        self,
        name: str,
        args: Sequence[str],
        *,
        what: str,
        input: bytes | None = None,
        timeout: float | None = 60,
    ) -> Any:
        """Run the node helper backends/remote/NAME; its last output line is JSON, an object
        with "error" when it failed. Failures raise WhimbrelError naming the node and `what`."""
        done = await self.run_python(
            remote_script(name), args, input=input, timeout=timeout, check=False
        )
        lines = done.text.strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else {}
        except ValueError:
            result = {"error": lines[-1][:300]}
        failed = isinstance(result, dict) and "error" in result
        if done.code != 0 or failed:
            message = (result.get("error") if failed else None) or (
                done.stderr.decode(errors="replace").strip()[-300:] or f"exit {done.code}"
            )
            raise WhimbrelError(f"{self.node.name}: {what}: {message}")
        return result

    async def stream_python(
        self, script: str, args: Sequence[str], *, timeout: float | None = None
    ) -> AsyncIterator[str]:
        """Like run_python, yielding the script's output lines as they come."""
        command = self.command(["python3", "-c", script, *args])
        async with self.channel() as conn:
            process = await conn.create_process(command, encoding="utf-8")
            try:
                async with asyncio.timeout(timeout):
                    async for line in process.stdout:
                        if line:  # asyncssh ends with an empty read at EOF
                            yield line.rstrip("\n")
                    await process.wait()
                if process.exit_status not in (0, None):
                    err = await process.stderr.read()
                    raise sudo_refusal(self.node, err) or CommandFailed(
                        self.node.name, ["python3"], process.exit_status, err
                    )
            finally:
                process.close()

    @asynccontextmanager
    async def conversation(
        self, name: str, args: Sequence[str], *, what: str
    ) -> AsyncIterator[Conversation]:
        """The node helper NAME kept running while the block runs, answering what it is asked a
        JSON line at a time; at the block's end its stdin closes and it is waited for (an
        error leaving the block closes the channel instead)."""
        command = self.command(["python3", "-c", remote_script(name), *args])
        async with self.channel() as conn:
            process = await conn.create_process(command, encoding="utf-8")
            try:
                yield Conversation(self.node, what, process)
                process.stdin.write_eof()
                try:
                    await asyncio.wait_for(process.wait(), CONVERSATION_END_S)
                except TimeoutError:
                    raise NodeUnreachable(self.node.name, f"{what} did not end") from None
                if process.exit_status:
                    lines = (await process.stdout.read()).strip().splitlines()
                    raise WhimbrelError(
                        f"{self.node.name}: {what}: "
                        + (lines[-1][:300] if lines else f"exit {process.exit_status}")
                    )
            finally:
                process.close()

    @asynccontextmanager
    async def unix_stream(
        self, path: str
    ) -> AsyncIterator[tuple[asyncssh.SSHReader, asyncssh.SSHWriter]]:
        """A stream to a Unix socket on the node (the Docker socket), over this connection."""
        async with self.channel("stream") as conn:
            try:
                reader, writer = await conn.open_unix_connection(path)
            except asyncssh.ChannelOpenError as exc:
                raise NodeUnreachable(self.node.name, f"cannot open {path}: {exc.reason}") from exc
            try:
                yield reader, writer
            finally:
                writer.close()


@dataclass
class Conversation:
    """A running node helper: ask() writes a line to it and returns its JSON answer; exchange()
    also hands over the progress lines ({"progress": ...}) a long answer is preceded by."""

    node: Node
    what: str
    process: asyncssh.SSHClientProcess[str]

    async def ask(self, line: str, timeout: float | None = None) -> dict[str, Any]:
        """Its answer to `line`; an {"error": ...} answer, or none, raises WhimbrelError."""
        self.process.stdin.write(line + "\n")
        return await self._next(line, timeout)

    async def exchange(self, line: str, idle_timeout: float) -> AsyncIterator[dict[str, Any]]:
        """Its progress lines to `line` as they come, then its answer (the first line without
        "progress"), as ask() takes it. `idle_timeout` bounds the silence between two lines,
        not the whole: a long answer that keeps saying how far it got is not cut short."""
        self.process.stdin.write(line + "\n")
        while True:
            reply = await self._next(line, idle_timeout)
            yield reply
            if PROGRESS not in reply:
                return

    async def _next(self, line: str, timeout: float | None) -> dict[str, Any]:
        """Its next JSON line (to `line`); an {"error": ...} one, or none, raises."""
        try:
            answer = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise NodeUnreachable(self.node.name, f"{self.what}: no answer to {line!r}") from None
        try:
            result = json.loads(answer) if answer else {"error": ""}
        except ValueError:
            result = {"error": answer.strip()[:300]}
        if not isinstance(result, dict) or "error" in result:
            message = result.get("error") if isinstance(result, dict) else None
            if not message:  # it died without a word: what it said on stderr
                with suppress(TimeoutError):
                    message = (await asyncio.wait_for(self.process.stderr.read(), 10))[-300:]
                if refused := sudo_refusal(self.node, message or ""):
                    raise refused
            raise WhimbrelError(
                f"{self.node.name}: {self.what}: {(message or '').strip() or 'ended'}"
            )
        return result


async def _unchecked_jump(tunnel: object, depth: int = 0) -> str | None:
    """The first ProxyJump hop asyncssh would reach without a host key check, if any. asyncssh
    opens hops with ~/.ssh/config alone (no known_hosts of ours), parsing the list as here; only
    the first hop follows a ProxyJump of its own, the next ones go through the hop before."""
    if not isinstance(tunnel, str) or depth >= MAX_JUMPS:
        return None
    for i, hop in enumerate(tunnel.split(",")):
        username, _, host = hop.rpartition("@")
        host, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        options = await asyncssh.SSHClientConnectionOptions.construct(
            config=(), host=host, port=int(port) if port else (), username=username or ()
        )
        if options.known_hosts is None:
            return hop
        if i == 0:
            nested = await _unchecked_jump(options.tunnel, depth + 1)
            if nested:
                return nested
    return None


def _describe(exc: BaseException, node: Node) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer from {node.address} (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{node.address} refused the connection (is sshd running?)"
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"{node.address} refused our key (permission denied)"
    if isinstance(exc, OSError):
        return f"cannot reach {node.address}: {exc.strerror or exc}"
    return f"{node.address}: {exc}"


class SessionPool:
    """One NodeSession per configured node, created lazily."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_CONNECTS)
        self._sessions: dict[str, NodeSession] = {}

    def session(self, node: Node | str) -> NodeSession:
        if isinstance(node, str):
            node = self.config.node(node)
        if node.name not in self._sessions:
            self._sessions[node.name] = NodeSession(node, self.config, self._gate)
        return self._sessions[node.name]

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions.values()), return_exceptions=True)

    async def __aenter__(self) -> SessionPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
