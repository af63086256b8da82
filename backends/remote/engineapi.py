"""The Docker Engine API asked on the node, over its Unix socket (standard library only).

The hand-over's steps inside the downtime (pause, the restore's start, its inspect) ask it
directly: the Docker CLI costs a process start each call (10-20 ms on the lab's nodes)."""

import http.client
import json
import socket
from urllib.parse import quote

API_VERSION = "v1.41"  # Docker 20.10; later engines answer it too


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get(conn, url):
    """(HTTP status, decoded JSON or None) of GET /API_VERSION/url."""
    status, body = _exchange(conn, "GET", url)
    return status, json.loads(body) if body else None


def _exchange(conn, method, url):
    """(HTTP status, body) of METHOD /API_VERSION/url."""
    conn.request(method, "/" + API_VERSION + url)
    response = conn.getresponse()
    return response.status, response.read()


def container_url(cid, action=""):
    """/containers/CID[/ACTION]: the id or name quoted whole, whatever it holds."""
    return "/containers/" + quote(cid, safe="") + ("/" + action if action else "")


def ask_engine(sock, method, url, timeout=10):
    """METHOD /API_VERSION/url on the engine at the Unix socket `sock`: its decoded JSON
    answer (None if empty), or RuntimeError with the engine's own message."""
    conn = UnixConnection(sock, timeout)
    try:
        status, body = _exchange(conn, method, url)
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeError(f"docker engine {method} {url}: {exc}") from None
    finally:
        conn.close()
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = {"message": body.decode(errors="replace")}
    if status >= 400:
        said = answer.get("message") if isinstance(answer, dict) else None
        raise RuntimeError(f"docker engine {method} {url}: {str(said or status)[-300:]}")
    return answer
