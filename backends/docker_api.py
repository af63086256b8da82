"""The Docker Engine API of a node, through its Unix socket reached over the node's SSH
connection (a direct-streamlocal channel per request, as `forward_local_path` would make).

A few dozen lines of HTTP/1.0 instead of the Docker SDK: the SDK is blocking (a thread per
call), and its own ssh:// transport is paramiko, a second SSH stack that ignores ProxyJump.
HTTP/1.0 keeps the engine from chunking replies: one request, one reply, connection closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, urlencode

from whimbrel.backends.errors import WhimbrelError
from whimbrel.backends.ssh import NodeSession, NodeUnreachable

API_VERSION = "v1.41"  # Docker 20.10; newer engines still serve it


class DockerError(WhimbrelError):
    def __init__(self, node: str, status: int, message: str) -> None:
        super().__init__(f"{node}: docker: {message} (HTTP {status})")
        self.status = status
        self.message = message


class DockerAPI:
    def __init__(self, session: NodeSession, timeout: float = 30) -> None:
        self.session = session
        self.socket = session.node.docker_socket
        self.timeout = timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON (or None for an empty reply)."""
        url = f"/{API_VERSION}{path}"
        if query:
            url += "?" + urlencode(query)
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {url} HTTP/1.0", "Host: docker", f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        async with self.session.unix_stream(self.socket) as (reader, writer):
            writer.write(request)
            try:
                raw = await asyncio.wait_for(reader.read(), timeout or self.timeout)
            except TimeoutError:
                raise NodeUnreachable(
                    self.session.node.name, f"docker {method} {path}: no answer"
                ) from None
        header, _, content = raw.partition(b"\r\n\r\n")
        try:
            status = int(header.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise NodeUnreachable(
                self.session.node.name, f"docker socket {self.socket}: no HTTP reply"
            ) from None
        data = json.loads(content) if content.strip() else None
        if status >= 400:
            message = data.get("message", "") if isinstance(data, dict) else content.decode()
            raise DockerError(self.session.node.name, status, message.strip())
        return data

    async def containers(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/containers/json", query={"all": "1"})

    async def inspect(self, container: str) -> dict[str, Any]:
        return await self.request("GET", f"/containers/{quote(container, safe='')}/json")
