"""A round's progress while its stream is sent (standard library only, Python 3.9): a JSON line
every EVERY_S seconds before the round's answer, so whimbrel shows the bytes, the rate and the
time left of a round that runs for tens of seconds, not only its end.

    {"progress": {"round": N, "sent": BYTES, "t": SECONDS}}

`sent`: the stream's bytes handed to the link's sessions so far (frames, not what ssh has
acknowledged: a window's worth may still be in flight); `t`: seconds since the send began. The
first line comes as the send begins (the dump has ended, the sessions are ready), the last once
the stream has ended and the receiver has taken it, before the answer; none after it.
"""

import threading
import time

from nodelib import out

EVERY_S = 0.5  # whimbrel promises a line at least once a second


class Ticker:
    """Progress lines from a thread of its own while the block runs: a write blocked on a slow
    link still lets them out (a blocked write lets go of the GIL). `sent()` is read from that
    thread. The block's end stops the thread before anything else is written: the round's answer
    never comes before, nor between, its progress lines (nodelib.out keeps lines whole)."""

    def __init__(self, number, sent, every=EVERY_S):
        self.number, self.sent, self.every = number, sent, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self):
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        self._thread.join()
        if exc_type is None:  # the whole stream, as the answer will count it
            self._say()
        return False

    def _run(self):
        self._say()
        while not self._stop.wait(self.every):
            self._say()

    def _say(self):
        t = round(time.monotonic() - self._t0, 3)
        out({"progress": {"round": self.number, "sent": self.sent(), "t": t}})
