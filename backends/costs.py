"""What a migration's rounds cost on these nodes beyond their bytes over the link.

The engine and the console's preview plan from the same Costs. `whimbrel bench costs` fits
them to real migrations and writes the fit, with each value's spread and where it came from,
to the file it is given; the one installed as costs.json next to this module is DEFAULT_COSTS,
else the hand-set values below.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from whimbrel.backends.model import ModelInputs

COSTS_FILE = Path(__file__).with_name("costs.json")


@dataclass(frozen=True)
class Costs:
    round_trips: float = 3.0  # k: per pre-copy round (session, answer)
    round_fixed_s: float = 0.3  # c0: a pre-copy round's fixed work, the container running
    first_round_s: float = 0.0  # e0: round 0's work beyond a later round's (its setup)
    first_round_trips: float = 0.0  # e1: round 0's round trips beyond a later round's
    scan_rate: float | None = None  # bytes/s: the per-round scan and hash of the whole state
    dump_time_s: float = 0.15
    dump_rate: float = 500e6  # bytes/s written by a full --leave-running dump
    # The final dump's fixed part, the container paused (None: dump_time_s); its rate is
    # dump_rate's.
    final_dump_time_s: float | None = None
    restore_time_s: float = 0.9  # the hand-over's fixed part: pause, start, commit
    restore_rate: float | None = None  # bytes/s: the restore's part that grows with the state
    # The hand-over's fixed part when the restore is lazy (nothing of it grows with the state,
    # and it is far shorter than the eager one's); None: restore_time_s.
    lazy_restore_time_s: float | None = None
    final_round_trips: float = 0.5  # j: round trips inside the downtime
    stream_rate: float | None = None  # bytes/s: a stream's own per-byte work beyond the wire
    # A migration's work outside its rounds and hand-over (preflight: lock, link, target,
    # probes; cleanup): setup_s + setup_round_trips * RTT. Fitted to the grid's 1500 runs
    # (docs/benchmark-runs.jsonl: total_time_s - migration_s; residual spread 1.3 s).
    setup_s: float = 4.76
    setup_round_trips: float = 39.6

    def setup_time(self, rtt: float) -> float:
        """What a migration takes beyond its plan's total time, on a path of this RTT."""
        return self.setup_s + self.setup_round_trips * rtt

    def model_inputs(
        self,
        *,
        size: float,
        dirty_rate: float,
        bandwidth: float,
        rtt: float,
        downtime_target: float,
        max_rounds: int,
        lazy_restore: bool = False,
        distinct_share: float = 1.0,
    ) -> ModelInputs:
        """What the model plans from, for a container of `size` bytes on these nodes, with
        `bandwidth` the path's probed throughput: the model's B is what a round's stream gets,
        the stream's own per-byte work (cipher, the receiver's writes) on top of the wire's.
        A lazy restore copies no memory in before it ends: its restore does not grow with
        `size` (README's table), and has a fixed part of its own where one was fitted.
        `distinct_share`: of `size`, what a whole-state round sends (pages repeated in it go
        once)."""
        scan = size / self.scan_rate if self.scan_rate else 0.0
        if lazy_restore:
            lazy = self.lazy_restore_time_s
            restore = self.restore_time_s if lazy is None else lazy
        else:
            restore = self.restore_time_s + (size / self.restore_rate if self.restore_rate else 0.0)
        return ModelInputs(
            size=size,
            dirty_rate=dirty_rate,
            bandwidth=1 / (1 / bandwidth + 1 / self.stream_rate) if self.stream_rate else bandwidth,
            rtt=rtt,
            round_trips=self.round_trips,
            round_overhead=self.round_fixed_s + scan,
            first_round_extra=self.first_round_s + self.first_round_trips * rtt,
            dump_time=self.dump_time_s,
            final_dump_time=self.final_dump_time_s,
            dump_rate=self.dump_rate,
            restore_time=restore,
            final_round_trips=self.final_round_trips,
            downtime_target=downtime_target,
            max_rounds=max_rounds,
            distinct_share=distinct_share,
        )


def load_costs(path: Path = COSTS_FILE) -> Costs:
    """The recorded fit, else the hand-set defaults; a record that no longer matches the
    fields is an error worth seeing, not a silent fallback."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return Costs()
    unknown = set(doc["costs"]) - {f.name for f in fields(Costs)}
    if unknown:
        raise ValueError(
            f"{path}: unknown cost fields {', '.join(sorted(unknown))}; "
            "regenerate it with `whimbrel bench costs`"
        )
    return Costs(**doc["costs"])


def save_costs(costs: Costs, spread: dict[str, Any], source: str, path: Path = COSTS_FILE) -> None:
    doc = {"source": source, "costs": asdict(costs), "spread": spread}
    path.write_text(json.dumps(doc, indent=2) + "\n")


DEFAULT_COSTS = load_costs()
