"""A pre-copy round's progress lines (remote/progress.py) as RoundProgress events: the rate over
the last few seconds and the time left for the round's planned bytes at that rate."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from whimbrel.backends.events import RoundProgress

# Long enough to smooth a stripe's bursts (a 1 MiB frame at a time), short enough that a link
# slowing down shows within a few lines.
RATE_WINDOW_S = 3.0


class RoundMeter:
    """One round's progress lines, in order, made events. The rate is taken on the node's own
    clock (each line's `t`), not on when the lines arrive: ssh may deliver two at once."""

    def __init__(self, index: int, planned_bytes: float, window_s: float = RATE_WINDOW_S) -> None:
        self.index, self.planned_bytes, self.window_s = index, planned_bytes, window_s
        self._samples: deque[tuple[float, int]] = deque()  # (send_s, sent), oldest first

    def event(self, line: Mapping[str, Any], t: float) -> RoundProgress:
        """The event for a progress line's payload ({"round", "sent", "t"}), `t` seconds into
        the migration."""
        send_s, sent = float(line["t"]), int(line["sent"])
        self._samples.append((send_s, sent))
        # The oldest sample kept is the newest one at or before the window's start.
        while len(self._samples) > 2 and self._samples[1][0] <= send_s - self.window_s:
            self._samples.popleft()
        rate = self._rate()
        return RoundProgress(
            self.index, sent, self.planned_bytes, send_s, rate, self._eta(sent, rate), t
        )

    def _rate(self) -> float | None:
        (t0, sent0), (t1, sent1) = self._samples[0], self._samples[-1]
        return (sent1 - sent0) / (t1 - t0) if t1 > t0 else None

    def _eta(self, sent: int, rate: float | None) -> float | None:
        # Unknown on a stalled link, and once the round outgrew its plan (the model's guess
        # said nothing of how much more there is).
        if not rate or rate <= 0 or sent >= self.planned_bytes:
            return None
        return (self.planned_bytes - sent) / rate
