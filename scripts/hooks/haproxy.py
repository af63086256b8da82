#!/usr/bin/env python3
"""A whimbrel hook for HAProxy: its server for the container follows the migration, through
HAProxy's runtime API (the `stats socket ... level admin` of its config).

    [hooks.haproxy]
    before_freeze = ["/usr/bin/python3", "scripts/hooks/haproxy.py", "--socket",
                     "/run/haproxy/admin.sock", "--server", "kv/redis", "--port", "6379"]
    commit = [... the same ...]
    abort = [... the same ...]

before_freeze parks the server on an address that refuses (`--park`, 127.0.0.1:1): HAProxy
retries a connection it could not open, so new clients wait in it instead of reaching a
container about to freeze; the sessions under way are given `--drain` seconds to end, and
those left (clients keeping their connection) are shut, as the freeze would end them anyway.
commit points the server at the target node (WHIMBREL_TARGET_HOST, or _WAN_ADDRESS with
`--address wan`), abort back at the source. For clients to wait rather than fail, the
backend needs `retries` (e.g. 100), `option redispatch 1` (each retry reads the server's
address anew) and a short `timeout connect` (e.g. 200ms): the retries span the downtime.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="HAProxy's admin socket")
    parser.add_argument("--server", required=True, help="BACKEND/SERVER of the container")
    parser.add_argument("--port", required=True, type=int, help="the container's port")
    parser.add_argument("--address", choices=("host", "wan"), default="host")
    parser.add_argument("--park", default="127.0.0.1:1", help="ADDR:PORT that refuses")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds for sessions to end")
    args = parser.parse_args(argv)
    event = os.environ.get("WHIMBREL_HOOK_EVENT")
    api = RuntimeApi(args.socket)
    if event == "before_freeze":
        park, _, port = args.park.rpartition(":")
        api.point(args.server, park, int(port))
        left = api.drain(args.server, args.drain)
        if left:
            api.ask(f"shutdown sessions server {args.server}")
            print(f"{args.server}: {left} sessions shut after {args.drain:g} s", file=sys.stderr)
    elif event in ("commit", "abort"):
        side = "TARGET" if event == "commit" else "SOURCE"
        key = "HOST" if args.address == "host" else "WAN_ADDRESS"
        api.point(args.server, os.environ[f"WHIMBREL_{side}_{key}"], args.port)
    else:
        parser.error(f"WHIMBREL_HOOK_EVENT is {event!r}: run by whimbrel, as a hook")
    return 0


class RuntimeApi:
    def __init__(self, path: str) -> None:
        self.path = path

    def ask(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5.0)
            sock.connect(self.path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def point(self, server: str, address: str, port: int) -> None:
        said = self.ask(f"set server {server} addr {address} port {port}").strip()
        if said and not said.startswith(("IP changed", "no need to change")):
            raise SystemExit(f"haproxy: set server {server}: {said}")

    def drain(self, server: str, seconds: float) -> int:
        """Wait up to `seconds` for the server's sessions to end; how many are left."""
        deadline = time.monotonic() + seconds
        while (left := self.sessions(server)) and time.monotonic() < deadline:
            time.sleep(0.01)
        return left

    def sessions(self, server: str) -> int:
        backend, _, name = server.partition("/")
        rows = csv.DictReader(self.ask("show stat").lstrip("# ").splitlines())
        for row in rows:
            if row["pxname"] == backend and row["svname"] == name:
                return int(row["scur"] or 0)
        raise SystemExit(f"haproxy: no server {server}")


if __name__ == "__main__":
    sys.exit(main())
