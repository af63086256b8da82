"""The source's sessions to the target's receiver (standard library only): a striped stream
over every stripe of the link (see wire.py and receiver.py), kept open from stream to stream,
and single sessions for what goes once.
"""

import contextlib
import json
import os
import subprocess
import time

from wire import BLOCK, LENGTH

OPENING_AT_ONCE = 8  # connections a link opens at once (see _await_master)


class Striped:
    """A byte stream dealt in BLOCK-sized frames round-robin over the stripes' sessions (see
    receiver.py); end() writes the end frame. Large writes are framed straight from the
    caller's buffer, not copied. `written` counts the stream's bytes handed to the sessions so
    far (from every stream it carried), for the agent's progress lines, read from their thread."""

    def __init__(self, sinks):
        self.sinks = sinks
        self.count = 0
        self.written = 0
        self.pending = bytearray()

    def write(self, data):
        if len(self.pending) + len(data) < BLOCK:  # the many small fields: C-fast
            self.pending += data
            return
        data = memoryview(data).cast("B")
        if self.pending:
            room = BLOCK - len(self.pending)
            self.pending += data[:room]
            data = data[room:]
            if len(self.pending) < BLOCK:
                return
            self._frame(self.pending)
            self.pending = bytearray()
        while len(data) >= BLOCK:
            self._frame(data[:BLOCK])
            data = data[BLOCK:]
        self.pending += data

    def _frame(self, block):
        sink = self.sinks[self.count % len(self.sinks)]
        sink.write(LENGTH.pack(len(block)))
        sink.write(block)
        self.count += 1
        self.written += len(block)

    def flush(self):
        if self.pending:
            self._frame(self.pending)
            self.pending = bytearray()
        for sink in self.sinks:
            sink.flush()

    def end(self):
        self.flush()
        sink = self.sinks[self.count % len(self.sinks)]
        sink.write(LENGTH.pack(0))
        sink.flush()


class Transfer:
    """The receiver's `action` over every stripe of the link, started before there is anything
    to send: the sessions open (a round trip each, and the receiver's own start) while the
    container still runs, and the receiver says "ready" once every stripe has joined."""

    def __init__(self, links, action):
        token = os.urandom(8).hex()
        self.session = _session(links[0], f"{action} {len(links)} {token}")
        self.stripes = []
        for index, argv in enumerate(links[1:], 1):
            if index >= OPENING_AT_ONCE:
                _await_master(links[index - OPENING_AT_ONCE])
            self.stripes.append(_session(argv, f"stripe {token} {index}"))
        self.stream = Striped([self.session.stdin, *(s.stdin for s in self.stripes)])
        self.is_ready = self.closed = False

    def ready(self):
        if self.is_ready:
            return
        line = self.session.stdout.readline()
        if not line.startswith(b"ready"):
            self.close(timeout=5)
            try:
                error = json.loads(line)["error"]
            except (ValueError, KeyError, TypeError):
                error = f"receiver did not start ({line[:200]!r})"
            raise RuntimeError("target: " + error)
        self.is_ready = True

    def close(self, timeout=60):
        """Close every session's input (stripes first); returns the first stripe's error.
        A receiver that did not get the whole stream fails; one that restored and gets no
        commit undoes the restore."""
        if self.closed:
            return None
        self.closed = True
        error = close_stripes(self.stripes, timeout)
        with contextlib.suppress(OSError):  # a broken pipe again, flushing
            self.session.stdin.close()
        return error

    def receiver_error(self, stripe_error):
        """Once the stream broke (a broken pipe, a stripe's session failing): the receiver's own
        error, a full disk say, says more than either. Its sessions are closed first, so it
        answers or ends at once."""
        self.close(timeout=10)
        reply = next_reply(self.session)
        return "target: " + (reply.get("error") or stripe_error or "link lost")

    def stream_out(self, feed):
        """Feed one stream and end it; feed's result. A receiver that ended mid-stream (a
        full disk) is asked why: its error, not the broken pipe, is raised."""
        try:
            result = feed(self.stream)
            self.stream.end()
        except BrokenPipeError:
            raise RuntimeError(self.receiver_error(self.close(timeout=10))) from None
        return result

    def send(self, feed):
        """Feed one stream, end it, and return (feed's result, the receiver's answer to it);
        the sessions stay open for the next."""
        self.ready()
        result = self.stream_out(feed)
        reply = next_reply(self.session)
        if "error" in reply:
            self.close(timeout=10)
            raise RuntimeError("target: " + reply["error"])
        return result, reply


def _await_master(argv, timeout=30):
    """Wait until the session on `argv` has a master connection (its control socket exists):
    sshd drops new connections at random once MaxStartups (10) are unauthenticated, so a link
    opens its stripes' connections OPENING_AT_ONCE at a time. Past the timeout the next one
    opens anyway (an ssh that made no master still connects: this only spreads them out)."""
    path = next((o.split("=", 1)[1] for o in argv if o.startswith("ControlPath=")), None)
    deadline = time.monotonic() + timeout
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def _session(argv, action):
    return subprocess.Popen(
        [*argv, action], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=BLOCK
    )


def close_stripes(stripes, timeout=60):
    """End the stripe sessions (their stream has ended, or failed); returns the first error."""
    errors = []
    for proc in stripes:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for index, proc in enumerate(stripes, 1):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            errors.append(f"stripe {index}: {_answer(proc).get('error', 'failed')}")
    return errors[0] if errors else None


def _answer(proc):
    """The last JSON line a session wrote, or {"error": ...}."""
    lines = proc.stdout.read().decode(errors="replace").strip().splitlines()
    if not lines:
        return {}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": lines[-1][:300]}


def answered(proc):
    """The receiver's answer once its session ends; its error raised."""
    reply = _answer(proc)
    code = proc.wait()
    if code != 0 or "error" in reply:
        raise RuntimeError("target: " + reply.get("error", f"link failed (exit {code})"))
    return reply


def next_reply(session):
    """The receiver's next JSON line, or {"error": ...} when the session ended instead."""
    line = session.stdout.readline()
    if not line:
        code = session.poll()
        return {"error": f"link closed (exit {code})"}
    try:
        return json.loads(line)
    except ValueError:
        return {"error": line.decode(errors="replace")[:300]}


def run_link(links, action, feed):
    """Run the receiver's `action` on the link's first connection alone, feeding its stdin
    (an image, once; an abort); returns (feed's result, the receiver's answer)."""
    proc = _session(links[0], action)
    try:
        result = feed(proc.stdin)
    except BrokenPipeError:
        result = None
    with contextlib.suppress(OSError):
        proc.stdin.close()
    return result, answered(proc)
