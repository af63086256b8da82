"""The recorded runs, one JSON line a run, and what the model predicts for each: the rounds
they measured become calibration records, and a run's own link and container become model
inputs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from whimbrel.backends.costs import Costs
from whimbrel.backends.model import Plan, evaluate
from whimbrel.backends.research.calibration import RoundRecord, calibrate

Row = dict[str, Any]


def done_keys(results: Path) -> set[tuple[str, str, int]]:
    """The (point, policy, repeat) of every run recorded in `results`."""
    return {(row["point"], row["policy"], row["repeat"]) for row in read_rows(results)}


def read_rows(results: Path) -> Iterator[Row]:
    """The runs recorded in `results`, none if it does not exist yet."""
    if not results.exists():
        return
    for line in results.read_text().splitlines():
        try:
            yield json.loads(line)
        except ValueError:  # a line cut short by a crash: that run is redone
            continue


def records(rows: Iterable[Row]) -> list[RoundRecord]:
    """Every measured round of these runs, for the fits."""
    known = {f.name for f in fields(RoundRecord)}
    return [
        RoundRecord(**{k: v for k, v in r.items() if k in known}, index=i)
        for row in rows
        for i, r in enumerate(row.get("measured_rounds") or ())
    ]


def probed_bandwidth(row: Row) -> float:
    """The path's throughput as the preflight probed it, which every round records. (A run's
    inputs hold the model's B: that less the stream's own per-byte work, from the costs.)"""
    rounds = row.get("measured_rounds")
    return rounds[0]["throughput"] if rounds else row["inputs"]["bandwidth"]


def predict(row: Row, costs: Costs, rounds: int | None = None) -> Plan | None:
    """What the model with `costs` predicts for this run's measured link and container, with
    the rounds the run made (or `rounds`)."""
    inputs = row.get("inputs")
    if not inputs:
        return None
    n = row["rounds"] if rounds is None else rounds
    model_inputs = costs.model_inputs(
        size=inputs["size"],
        dirty_rate=inputs["dirty_rate"],
        bandwidth=probed_bandwidth(row),
        rtt=inputs["rtt"],
        downtime_target=inputs["downtime_target"],
        max_rounds=max(inputs["max_rounds"], n),
        lazy_restore=bool(row.get("lazy_restore")),
    )
    return evaluate(model_inputs, n)


def cross_validated(rows: list[Row]) -> list[tuple[Row, Plan]]:
    """Each run predicted by costs fitted to the other grid points' runs only (leave one
    point out), so the calibrated error is not the fit's own residual."""
    out = []
    by_point: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_point[r["point"]].append(r)
    for point, runs in by_point.items():
        others = [r for r in rows if r["point"] != point]
        if not others:
            continue
        costs = calibrate(records(others)).costs()
        out += [(r, p) for r in runs if (p := predict(r, costs)) is not None]
    return out
