"""The downtime split into the hand-over's steps: what the source's hand-over daemon measured,
and what the model predicts, in the same parts so that one can be drawn against the other."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class DowntimeParts:
    """Seconds each, in the order they happen; measured, they add up to the downtime (the
    source's clock from `docker pause` to hearing the target's "committed"). The model does
    not predict the pause, the diff, the commit or the resume on their own: its fitted dump,
    send and restore terms hold them, so its parts have 0 there."""

    freeze_s: float  # `docker pause` of the source
    dump_s: float  # CRIU's final dump
    diff_s: float  # the dump's pages hashed against what the target holds
    send_s: float  # the residual and the files over the link, and the link's other waits
    restore_s: float  # the target's restore, by its own clock
    commit_s: float  # the target's commit record (the word came behind the stream)
    resume_s: float  # on the target: staged pages removed, the fenced tasks resumed
    # The target's "committed" on its way back: half the link's RTT (as preflight measured
    # it), taken out of the send (`with_answer`). The target served before it: no client
    # waits through it, so `served_s` is the downtime without it. 0 in records from before.
    answer_s: float = 0.0

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.named())

    @property
    def served_s(self) -> float:
        """From the pause to the target serving: the downtime its clients see."""
        return self.total_s - self.answer_s

    def with_answer(self, one_way_s: float) -> DowntimeParts:
        """The answer's way back (`one_way_s`, half the link's RTT) told apart from the send,
        which held it: at most the whole send, so that no part goes negative."""
        answer = min(max(one_way_s, 0.0), self.send_s + self.answer_s)
        return replace(self, send_s=self.send_s + self.answer_s - answer, answer_s=answer)

    def named(self) -> tuple[tuple[str, float], ...]:
        """(part, seconds) in order, the part named without its unit: freeze, dump, ..."""
        return tuple((f.name.removesuffix("_s"), getattr(self, f.name)) for f in fields(self))

    def summary(self) -> str:
        """One line: the total (and when the target served, where its answer is told apart),
        then each part that took any time."""
        parts = ", ".join(f"{name} {s * 1e3:.0f} ms" for name, s in self.named() if s > 0)
        served = f" (served at {self.served_s:.2f} s)" if self.answer_s > 0 else ""
        return f"{self.total_s:.2f} s{served}: {parts}"

    @classmethod
    def from_json(cls, data: Any) -> DowntimeParts | None:
        """Parts as a record or the node's outcome holds them; None unless every part is a
        finite, non-negative number (a record from before parts were kept has none; one from
        before the answer was told apart has it in its send)."""
        if not isinstance(data, dict):
            return None
        values = [data.get(f.name, f.default) for f in fields(cls)]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in values
        ):
            return None
        return cls(*(float(v) for v in values))
