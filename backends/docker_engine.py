"""The Docker Engine API of a node, through the Docker SDK over the node's SSH connection.

The SDK talks to a local Unix socket that asyncssh forwards to the node's Docker socket
(`forward_local_path`), in a 0700 directory of the operator's that goes when the block ends
(if whimbrel is killed, when the next one is made): one SSH stack (ours: host keys checked,
ProxyJump honoured), never the SDK's paramiko. The SDK blocks, so each call runs in a worker
thread under a timeout and the event loop (the console's) never waits on an engine.
docker.errors become the one-line errors users see.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.ssh import NodeSession, NodeUnreachable

if TYPE_CHECKING:
    # Imported where used: the SDK and requests cost 70 ms of every whimbrel start, and
    # only a migration or a doctor asks an engine from here.
    import docker

API_VERSION = "1.41"  # Docker 20.10; newer engines still serve it
DEFAULT_TIMEOUT_S = 30.0

T = TypeVar("T")


class DockerError(WhimbrelError):
    def __init__(self, node: str, status: int, message: str) -> None:
        super().__init__(f"{node}: docker: {message} (HTTP {status})")
        self.status = status
        self.message = message


class DockerEngine:
    """One node's engine, for the block that made it (`docker_engine`)."""

    def __init__(self, session: NodeSession, api: docker.APIClient, timeout: float) -> None:
        self.session = session
        self.api = api
        self.timeout = timeout

    async def call(self, what: str, fn: Callable[[docker.APIClient], T]) -> T:
        """fn(api) in a worker thread; its failure as DockerError or NodeUnreachable."""
        import docker.errors
        import requests.exceptions

        node = self.session.node.name
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, self.api), self.timeout)
        except TimeoutError:
            raise NodeUnreachable(node, f"docker {what}: no answer in {self.timeout:g} s") from None
        except docker.errors.APIError as exc:
            message = exc.explanation or str(exc)
            if isinstance(message, bytes):
                message = message.decode(errors="replace")
            raise DockerError(node, exc.status_code or 0, str(message).strip()) from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # A forwarding the node refused shows here as a dropped connection: its reason
            # is what a channel of our own is told.
            async with self.session.unix_stream(self.session.node.docker_socket):
                pass
            raise NodeUnreachable(node, f"docker {what}: {exc}") from None

    async def ping(self) -> None:
        await self.call("ping", lambda api: api.ping())

    async def info(self) -> dict[str, Any]:
        return await self.call("info", lambda api: api.info())

    async def inspect(self, container: str) -> dict[str, Any]:
        return await self.call("inspect", lambda api: api.inspect_container(container))

    async def inspect_image(self, image: str) -> dict[str, Any]:
        return await self.call("image inspect", lambda api: api.inspect_image(image))

    async def create(self, name: str, body: dict[str, Any]) -> str:
        """A container made from an Engine API create body; its id."""
        made = await self.call(
            "create", lambda api: api.create_container_from_config(body, name=name)
        )
        return str(made["Id"])


def _socket_dir() -> str:
    """A new private dir for one forwarded socket: under $XDG_RUNTIME_DIR, else whimbrel's
    state dir (never a shared /tmp). Those a killed whimbrel left (its pid gone) go first."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime or Path.home() / ".local" / "state") / "whimbrel" / "sockets"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in base.glob("docker-*-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"docker-{os.getpid()}-", dir=base)  # 0700


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@asynccontextmanager
async def docker_engine(
    session: NodeSession, timeout: float = DEFAULT_TIMEOUT_S
) -> AsyncIterator[DockerEngine]:
    """The node's engine for the block's length: its socket forwarded to a local one in a
    private directory, removed after with the forwarding."""
    import docker

    conn = await session.connection()
    where = _socket_dir()
    local = os.path.join(where, "docker.sock")
    try:
        try:
            listener = await conn.forward_local_path(local, session.node.docker_socket)
        except OSError as exc:
            reason = f"forwarding the Docker socket: {exc}"
            raise NodeUnreachable(session.node.name, reason) from exc
        api = docker.APIClient(base_url=f"unix://{local}", version=API_VERSION, timeout=timeout)
        try:
            yield DockerEngine(session, api, timeout)
        finally:
            api.close()
            listener.close()
    finally:
        shutil.rmtree(where, ignore_errors=True)
