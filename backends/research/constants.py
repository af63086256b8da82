"""The constants fitted to the runs: their table in the report, and the costs file the engine
plans from, written only when asked for (`whimbrel bench costs`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whimbrel.backends.costs import load_costs, save_costs
from whimbrel.backends.research.calibration import Calibration, Estimate, calibrate
from whimbrel.backends.research.runs import Row, records

CONSTANTS = {  # Calibration field: (what it is, Costs field, unit)
    "round_trips": ("k, round trips per pre-copy round", "round_trips", ""),
    "round_fixed": ("c0, a pre-copy round's fixed work", "round_fixed_s", "s"),
    "first_round_fixed": ("e0, round 0's work beyond a later round's", "first_round_s", "s"),
    "first_round_trips": (
        "e1, round 0's round trips beyond a later round's",
        "first_round_trips",
        "",
    ),
    "scan_rate": ("per-round scan of the whole state", "scan_rate", "B/s"),
    "dump_time": ("dump, fixed", "dump_time_s", "s"),
    "dump_rate": ("dump rate (full dump of the state)", "dump_rate", "B/s"),
    "final_dump_time": ("the final dump, fixed (the container paused)", "final_dump_time_s", "s"),
    "restore_time": ("hand-over, fixed (pause, restore, commit)", "restore_time_s", "s"),
    "restore_rate": ("restore rate (grows with the state)", "restore_rate", "B/s"),
    "lazy_restore_time": (
        "hand-over, fixed, with a lazy restore",
        "lazy_restore_time_s",
        "s",
    ),
    "final_round_trips": ("j, round trips inside the downtime", "final_round_trips", ""),
    "stream_rate": ("a stream's own work beyond the wire", "stream_rate", "B/s"),
}


def constants_section(calibration: Calibration) -> list[str]:
    out = [
        "## Calibrated constants",
        "",
        "Least squares over every measured round (a time that cannot be told apart or fits "
        "negative is left at its default). `whimbrel bench costs` writes them to a costs file, "
        "the engine and the console's preview plan from the one installed with whimbrel.",
        "",
        "| constant | value | standard error | residual spread | rounds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (what, _, unit) in CONSTANTS.items():
        e: Estimate | None = getattr(calibration, name)
        if e is not None:
            out.append(
                f"| {what} | {e.value:.4g} {unit} | {e.stderr:.3g} | "
                f"{e.residual_std:.3g} s | {e.samples} |"
            )
        else:
            out.append(f"| {what} | (not determined: default kept) | | | |")
    return [*out, ""]


def spread_record(calibration: Calibration) -> dict[str, Any]:
    """Each fitted constant's standard error and residual spread, for costs.json."""
    return {
        costs_field: {"stderr": e.stderr, "residual_std": e.residual_std, "samples": e.samples}
        for name, (_, costs_field, _) in CONSTANTS.items()
        if (e := getattr(calibration, name)) is not None
    }


def write_costs(rows: Iterable[Row], path: Path, source: str, now: Iterable[Row] = ()) -> list[str]:
    """Fit the costs to the runs in `rows` and `now` (the hand-over as it runs now: see
    calibrate) that succeeded and write them to `path`, with each value's spread and `source`.
    What the runs cannot determine (a rate, from one state size) keeps the value `path`
    already holds, if any, and the file says so; returns those names."""
    in_use, in_use_spread = load_costs(path), _spread_in(path)
    recent = records(r for r in now if r["ok"])
    calibration = calibrate(records(r for r in rows if r["ok"]), in_use=in_use, now=recent)
    spread = spread_record(calibration)
    kept = sorted(set(in_use_spread) - set(spread))
    note = f"; held: {', '.join(kept)}" if kept else ""
    save_costs(calibration.costs(in_use), in_use_spread | spread, source + note, path)
    return kept


def _spread_in(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()).get("spread", {})
    except (OSError, ValueError):
        return {}
