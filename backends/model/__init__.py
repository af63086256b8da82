"""The latency-aware pre-copy model: pure functions over numbers and numpy arrays, no I/O.

Symbols (SI units throughout: bytes, bytes/s, seconds): M state size, D dirty rate, B throughput
(what a round's stream gets: the probed rate less the stream's own per-byte work, costs.py),
RTT round-trip time, k round trips per round, lambda = D/B. docs/model.md derives everything.

Semantics every caller relies on:
- pre-copy rounds i = 0..n-1 run while the container runs and send V_0..V_{n-1}; the final
  round sends V_n with the container stopped; n = 0 is stop-and-copy (V_0 = M sent stopped);
- V_0 = M, V_{i+1} = D * (V_i/B + k*RTT + c), c the round's fixed work (default 0);
- downtime(n) = dump_time + V_n/B + j*RTT + restore_time, j the final hand-over's round
  trips (default 1/2: the last byte's way); `final_dump_time`, when given, is the final
  dump's fixed part (the container paused) in place of dump_time;
- total time = sum over i < n of (V_i/B + k*RTT + c) + downtime(n).
- round 0 may run e seconds longer (`first_round_extra`: its sessions open, its TCP windows
  grow), which V_1 is dirtied during too; off by default.
Optional inputs (off by default, so the above stays exact): a hot working set W saturates the
dirty set, W*(1 - exp(-D*T/W)) instead of D*T; a dump rate makes every round a CRIU dump that
freezes the container for dump_time + dumped/dump_rate (the pre-copy freezes are "brownouts").

Modules: inputs (ModelInputs and their checks), forecast (Plan, RoundForecast, the policies'
names), physics (a round's costs, the volumes, the floor), track (every round up to the cap),
policies (how each chooses its rounds), planning (plan, compare, evaluate), replanning
(MeasuredRound, replan), closed_form (grid). Import from this package, not from its modules.
"""

from whimbrel.backends.model.closed_form import Grid, grid, rounds_closed_form
from whimbrel.backends.model.forecast import (
    POLICIES,
    POLICY_MARKERS,
    Plan,
    Policy,
    RoundForecast,
    Verdict,
)
from whimbrel.backends.model.inputs import (
    MAX_ROUND_CAP,
    PAGE_SIZE,
    ModelInputError,
    ModelInputs,
)
from whimbrel.backends.model.physics import floor_bytes, volumes
from whimbrel.backends.model.planning import compare, evaluate, plan
from whimbrel.backends.model.replanning import MeasuredRound, replan

__all__ = [
    "MAX_ROUND_CAP",
    "PAGE_SIZE",
    "POLICIES",
    "POLICY_MARKERS",
    "Grid",
    "MeasuredRound",
    "ModelInputError",
    "ModelInputs",
    "Plan",
    "Policy",
    "RoundForecast",
    "Verdict",
    "compare",
    "evaluate",
    "floor_bytes",
    "grid",
    "plan",
    "replan",
    "rounds_closed_form",
    "volumes",
]
