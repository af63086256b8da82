"""Talking to the lab's workloads from the operator's host: a minimal Redis client (RESP over a
socket, so nothing but the standard library is needed) and memwriter's status line."""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass


class RespError(Exception):
    pass


def _encode(*args: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Redis:
    """Blocking RESP2 client: enough for loading data, checking it, and steady write loads."""

    def __init__(self, host: str, port: int = 6379, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reply(self) -> object:
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RespError(f"unexpected reply {line!r}")

    def command(self, *args: str | bytes | int) -> object:
        self.sock.sendall(_encode(*args))
        return self._reply()

    def pipeline(self, commands: Iterable[tuple[str | bytes | int, ...]]) -> list[object]:
        cmds = list(commands)
        self.sock.sendall(b"".join(_encode(*c) for c in cmds))
        return [self._reply() for _ in cmds]


VALUE_SIZE = 100  # bytes a value, unless told: what the loads write and the checks expect


def value_for(i: int, size: int) -> bytes:
    """The deterministic value of key i, so any key can be checked after a move."""
    seed = f"v{i}:".encode()
    return (seed * (size // len(seed) + 1))[:size]


WRITE_PREFIX = "w:"  # WriteLoad's keys: w:0, w:1, ..., from w:0 again for every load


# How a load's values are made: each its own and checkable (value_for), all one repeated
# value (a dump's pages then repeat too: the data path sends such a page once), or random
# bytes (nothing repeats).
VALUES = {
    "keyed": value_for,
    "same": lambda i, size: b"r" * size,
    "random": lambda i, size: os.urandom(size),
}


def load_redis(
    host: str,
    port: int,
    n_keys: int,
    value_size: int = VALUE_SIZE,
    batch: int = 2000,
    prefix: str = "key:",
    values: str = "keyed",
) -> int:
    """SET {prefix}0..n-1 to values made as `values` says (VALUES); returns the server's
    DBSIZE afterwards."""
    make = VALUES[values]
    with Redis(host, port) as r:
        for start in range(0, n_keys, batch):
            keys = range(start, min(n_keys, start + batch))
            r.pipeline(("SET", f"{prefix}{i}", make(i, value_size)) for i in keys)
        return int(r.command("DBSIZE"))  # type: ignore[arg-type]


def missing_keys(
    host: str, port: int, n_keys: int, value_size: int = VALUE_SIZE, batch: int = 5000
) -> list[int]:
    """Indices among key:0..n-1 whose value is absent or wrong."""
    bad: list[int] = []
    with Redis(host, port) as r:
        for start in range(0, n_keys, batch):
            stop = min(n_keys, start + batch)
            values = r.pipeline(("GET", f"key:{i}") for i in range(start, stop))
            bad += [
                i
                for i, v in zip(range(start, stop), values, strict=True)
                if v != value_for(i, value_size)
            ]
    return bad


@dataclass(frozen=True)
class MemwriterStatus:
    counter: int
    checksum: str
    size: int
    hot: int
    rate: int
    pid: int
    verified: bool | None  # None: not asked


def memwriter_status(
    host: str, port: int = 7070, verify: bool = False, timeout: float = 10.0
) -> MemwriterStatus:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"verify\n" if verify else b"status\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    doc = json.loads(data)
    return MemwriterStatus(
        counter=doc["counter"],
        checksum=doc["checksum"],
        size=doc["size"],
        hot=doc["hot"],
        rate=doc["rate"],
        pid=doc["pid"],
        verified=None if "verify" not in doc else doc["verify"] == "ok",
    )


def preload_writes(host: str, port: int, n_keys: int, value_size: int = VALUE_SIZE) -> int:
    """The first n_keys a WriteLoad will write, written now: afterwards its writes overwrite
    keys that exist, so they no longer grow redis's key table (and start a rehash)."""
    return load_redis(host, port, n_keys, value_size, prefix=WRITE_PREFIX)


class WriteLoad:
    """A client writing sequential keys at a fixed rate, recording every acknowledged write.

    It follows the container: when its connection breaks it tries each address in turn, so
    after a migration it carries on against the target. The longest gap between two
    acknowledgements is the outage a client saw."""

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        rate: float,
        value_size: int = VALUE_SIZE,
        prefix: str = WRITE_PREFIX,
    ):
        self.addresses = addresses
        self.prefix = prefix
        self.interval = 1.0 / rate
        self.value_size = value_size
        self.acked: list[int] = []
        self.ack_times: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WriteLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def longest_gap_s(self) -> float:
        times = self.ack_times
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def _connect(self, attempt: int) -> Redis | None:
        host, port = self.addresses[attempt % len(self.addresses)]
        try:
            return Redis(host, port, timeout=0.5)
        except OSError:
            return None

    def _run(self) -> None:
        client, attempt, i = None, 0, 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            if client is None:
                client = self._connect(attempt)
                attempt += 1
                if client is None:
                    time.sleep(0.02)
                    continue
            try:
                client.command("SET", f"{self.prefix}{i}", value_for(i, self.value_size))
            except (OSError, RespError):
                self.errors += 1
                client.close()
                client = None
                continue  # the same key again: only acknowledged writes count
            self.acked.append(i)
            self.ack_times.append(time.monotonic())
            i += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        if client is not None:
            client.close()


def missing_writes(
    host: str, port: int, acked: list[int], value_size: int = VALUE_SIZE, prefix: str = WRITE_PREFIX
) -> list[int]:
    """Acknowledged writes of a WriteLoad (keys `prefix`N) that the server does not hold."""
    bad: list[int] = []
    with Redis(host, port) as r:
        for start in range(0, len(acked), 5000):
            chunk = acked[start : start + 5000]
            values = r.pipeline(("GET", f"{prefix}{i}") for i in chunk)
            bad += [i for i, v in zip(chunk, values, strict=True) if v != value_for(i, value_size)]
    return bad
