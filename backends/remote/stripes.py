"""The receiving end of a striped stream (standard library only): the stripes' sessions
joined and their frames read back in order (the format: wire.py).
"""

import contextlib
import io
import os
import socket
import sys
import time

from nodelib import out
from targetdir import here
from wire import FRAME_LIMIT, LENGTH

MAX_STRIPES = 16  # a sanity bound on what a source may ask for (whimbrel uses 12 at most)


def sink(k, token):
    stream = joined(k, token)
    total = 0
    t0 = None
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        if t0 is None:
            t0 = time.perf_counter()
        total += len(chunk)
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    out({"bytes": total, "elapsed_s": elapsed})


def _stripe_socket(token):
    if not (token.isalnum() and len(token) <= 32):
        raise ValueError("bad stream token")
    return os.path.join(here(), f"stripes-{token}.sock")


class Joined:
    """The frames of a striped stream read back in order: a reader whose read(n) returns n
    bytes, or fewer only at the stream's end. (Each frame is served from a BytesIO: the
    receiver reads many small fields, and those stay C-fast.)"""

    def __init__(self, stripes):
        self.stripes = stripes
        self.count = 0
        self.block = io.BytesIO()
        self.ended = False

    def read(self, n):
        data = self.block.read(n)
        if len(data) == n:
            return data
        parts = [data]
        n -= len(data)
        while n > 0 and self._next():
            chunk = self.block.read(n)
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def finish(self):
        """Read the end frame: whatever the session reads next (the final round's "commit",
        on stdin) comes after the stream, not inside it."""
        if self.block.read(1) or self._next():
            raise ValueError("data after the end of the stream")

    def more(self):
        """Begin the session's next stream (after an end frame): False when the source ends
        the session there instead (every stripe at EOF)."""
        self.ended = False
        index = self.count % len(self.stripes)
        head = self.stripes[index].read(4)
        if not head:
            return False
        return self._frame(index, head)

    def _next(self):
        if self.ended:
            return False
        index = self.count % len(self.stripes)
        return self._frame(index, read_exact(self.stripes[index], 4, f"stripe {index}"))

    def _frame(self, index, head):
        if len(head) != 4:
            raise EOFError(f"stripe {index} ended early")
        stripe = self.stripes[index]
        (n,) = LENGTH.unpack(head)
        if n == 0:
            self.ended = True
            return False
        if n > FRAME_LIMIT:
            raise ValueError(f"stripe {index}: frame of {n} bytes")
        self.block = io.BytesIO(read_exact(stripe, n, f"stripe {index}"))
        self.count += 1
        return True


def joined(k, token):
    """This session's stdin and the k-1 `stripe` sessions of stream `token`, joined; then
    "ready" to the source, which sends (or freezes the container) only after it."""
    k = int(k)
    if not 1 <= k <= MAX_STRIPES:
        raise ValueError(f"bad stripe count {k}")
    stripes = [sys.stdin.buffer] + [None] * (k - 1)
    if k > 1:
        _accept(stripes, _stripe_socket(token))
    print("ready", flush=True)
    return Joined(stripes)


def _accept(stripes, path):
    """Fill `stripes` with the stripe sessions that connect to `path`."""
    k = len(stripes)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(k)
        listener.settimeout(60)  # the stripes start with this session: a minute is plenty
        while None in stripes:
            conn, _ = listener.accept()
            conn.settimeout(10)
            index = conn.recv(1)
            conn.settimeout(None)
            if not index or not 1 <= index[0] < k or stripes[index[0]] is not None:
                raise ValueError(f"bad stripe {index!r}")
            stripes[index[0]] = conn.makefile("rb")
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def stripe(token, index):
    """Relay this session's stdin to the session reassembling stream `token`."""
    path = _stripe_socket(token)
    index = int(index)
    if not 1 <= index < MAX_STRIPES:
        raise ValueError(f"bad stripe {index}")
    deadline = time.monotonic() + 60
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            conn.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise RuntimeError("no session is receiving this stream") from None
            time.sleep(0.01)
    conn.sendall(bytes([index]))
    stdin = sys.stdin.buffer
    while chunk := stdin.read1(1 << 20):
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
    out({"stripe": index})


def read_exact(stream, n, what="stream"):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"{what} ended early")
    return data
