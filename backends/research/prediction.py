"""How far the model's predictions were from what the runs measured."""

from __future__ import annotations

from collections.abc import Iterable

from whimbrel.backends.research.cells import percent_cell, quantile_cell
from whimbrel.backends.research.points import LA
from whimbrel.backends.research.runs import Row, cross_validated


def _errors(pairs: Iterable[tuple[float | None, float | None]]) -> list[float]:
    return [abs(p - m) / m for p, m in pairs if p is not None and m]


def prediction_section(ok: list[Row]) -> list[str]:
    validated = cross_validated(ok)
    lines = {
        "downtime, first plan (the engine's costs at the time of the run)": _errors(
            (r.get("predicted_downtime_s"), r["downtime_s"]) for r in ok
        ),
        "downtime, last re-plan before the final round": _errors(
            (r.get("replanned_downtime_s"), r["downtime_s"]) for r in ok
        ),
        "downtime, calibrated (leave one point out; goal: median <= 15%)": _errors(
            (p.downtime_s, r["downtime_s"]) for r, p in validated
        ),
        "migration time, calibrated (leave one point out)": _errors(
            (p.total_time_s, r.get("migration_s")) for r, p in validated
        ),
    }
    out = [
        "## Prediction error",
        "",
        "Relative error |predicted - measured| / measured. The calibrated rows predict each run "
        "with the rounds it made, from costs fitted to every other grid point's runs.",
        "",
        "| | median | 90th percentile | runs |",
        "| --- | --- | --- | --- |",
    ]
    for name, errs in lines.items():
        cells = (percent_cell(errs, 50), percent_cell(errs, 90), len(errs))
        out.append(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    for policy in (LA, None):
        diffs = [
            abs(r["predicted_rounds"] - r["rounds"])
            for r in ok
            if r.get("predicted_rounds") is not None and policy in (None, r["policy"])
        ]
        who = policy or "every policy"
        out.append(
            f"| rounds, first plan against made ({who}; absolute) | {quantile_cell(diffs, 50)} | "
            f"{quantile_cell(diffs, 90)} | {len(diffs)} |"
        )
    return [*out, ""]
