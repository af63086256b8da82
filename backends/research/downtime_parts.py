"""Where the downtime goes: the hand-over's parts, measured against predicted, by state size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.research.cells import median_of
from whimbrel.backends.research.points import SC
from whimbrel.backends.research.runs import Row

PARTS = tuple(f.name.removesuffix("_s") for f in fields(DowntimeParts))


def downtime_parts_section(ok: list[Row]) -> list[str]:
    """Median seconds of each part over the pre-copy runs of each workload and size; nothing
    when no run kept its parts (runs recorded before the hand-over measured them)."""
    groups: dict[tuple[str, int], list[tuple[DowntimeParts, DowntimeParts | None]]]
    groups = defaultdict(list)
    for r in ok:
        measured = DowntimeParts.from_json(r.get("downtime_parts"))
        if measured is not None and r["policy"] != SC:
            predicted = DowntimeParts.from_json(r.get("predicted_downtime_parts"))
            groups[(r["workload"], r["size_mib"])].append((measured, predicted))
    if not groups:
        return []
    out = [
        "## Where the downtime goes",
        "",
        "Median milliseconds of each part of the hand-over over the pre-copy runs (every policy "
        "but stop-and-copy), measured by the source's hand-over daemon (the parts add up to its "
        "downtime) and, on the line below, as the first plan predicted them (the model holds "
        "freeze, diff, commit and resume inside its dump, send and restore terms).",
        "",
        "| workload | state | runs | | downtime | " + " | ".join(PARTS) + " |",
        "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in PARTS) + " |",
    ]
    for (workload, size), runs in sorted(groups.items()):
        for label, taken in (
            ("measured", [m for m, _ in runs]),
            ("predicted", [p for _, p in runs if p]),
        ):
            if not taken:
                continue
            medians = [median_of([getattr(t, f"{name}_s") for t in taken]) for name in PARTS]
            total = median_of([t.total_s for t in taken])
            out.append(
                f"| {workload} | {size} MiB | {len(taken)} | {label} | {total * 1e3:.0f} | "
                + " | ".join(f"{m * 1e3:.0f}" for m in medians)
                + " |"
            )
    return [*out, ""]
