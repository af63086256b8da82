"""The Docker Engine API asked on the node, over its Unix socket (standard library only)."""

import http.client
import json
import socket

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
    conn.request("GET", "/" + API_VERSION + url)
    response = conn.getresponse()
    body = response.read()
    return response.status, json.loads(body) if body else None
