"""The Docker Engine API as the node scripts ask it (backends/remote/engineapi.py), against a
stand-in engine on a Unix socket: what is asked, and what an error says."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from tests.node_helpers import load

api = load("engineapi")


class _Engine(BaseHTTPRequestHandler):
    asked: ClassVar[list[tuple[str, str]]] = []

    def _answer(self) -> None:
        self.asked.append((self.command, self.path))
        if "missing" in self.path:
            body, status = json.dumps({"message": "No such container: missing"}).encode(), 404
        elif self.command == "GET":
            body, status = json.dumps({"State": {"Status": "running", "Pid": 42}}).encode(), 200
        else:
            body, status = b"", 204
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def address_string(self) -> str:  # a Unix socket's peer has no host
        return "engine"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine_sock(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    server = socketserver.ThreadingUnixStreamServer(path, _Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Engine.asked = []
    yield path
    server.shutdown()
    server.server_close()


def test_a_start_from_a_checkpoint_asks_the_engine_with_the_name_quoted_whole(
    engine_sock: str,
) -> None:
    url = api.container_url("a/../b c?x", "start") + "?checkpoint=whimbrel"
    assert api.ask_engine(engine_sock, "POST", url) is None
    assert _Engine.asked == [
        ("POST", "/v1.41/containers/a%2F..%2Fb%20c%3Fx/start?checkpoint=whimbrel")
    ]


def test_an_inspect_answers_the_engines_json(engine_sock: str) -> None:
    state = api.ask_engine(engine_sock, "GET", api.container_url("kv", "json"))["State"]
    assert (state["Status"], state["Pid"]) == ("running", 42)


def test_an_engine_error_says_the_engines_own_message(engine_sock: str) -> None:
    with pytest.raises(RuntimeError, match="No such container: missing"):
        api.ask_engine(engine_sock, "POST", api.container_url("missing", "pause"))


def test_an_engine_that_is_not_there_is_an_error_naming_the_call(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="docker engine POST /containers/kv/pause"):
        api.ask_engine(str(tmp_path / "absent.sock"), "POST", api.container_url("kv", "pause"))
