"""How full round 0 keeps the link, at each round trip: issue 23's striping figures.

A 1 GiB memwriter, all of it hot, dirtying 2% of the link, migrated with the QEMU policy (it
always pre-copies a state that large) over a 400 Mbit/s lab at 50, 100 and 200 ms RTT, back
and forth between east-1 and west-1 (`whimbrel bench`'s runner: each run verified after it).
Round 0 sends the whole state; its utilisation is the bytes it sent over the seconds from its
sessions' readiness to the target's answer (hashing, the stripes' frames and the answer's
half round trip included), against the lab's set bandwidth; and, stricter, over the seconds
from the end of its dump, which adds what the sessions round 0 opens took beyond the dump.

Run (as root, lab up): .venv/bin/python benchmarks/link_fill.py [REPEATS] (5)
Writes the runs to bench-results/link-fill-runs.jsonl (a rerun resumes them) and the figures
to bench-results/link-fill.json. Goal (issue 23): >= 95% at every RTT.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from whimbrel.backends.research.grid import Point
from whimbrel.backends.research.runner import run_grid
from whimbrel.backends.research.runs import read_rows

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"
RUNS, OUT = RESULTS / "link-fill-runs.jsonl", RESULTS / "link-fill.json"
MBIT, SIZE_MIB, RTTS_MS = 400, 1024, (50, 100, 200)
POLICY = "qemu"


def round_zero(row: dict[str, Any]) -> dict[str, Any] | None:
    first = (row.get("measured_rounds") or [None])[0]
    if not row["ok"] or not first or first.get("final"):
        return None
    link = row["bandwidth_mbit"] * 1e6 / 8
    sessions = first.get("sessions_s") or 0.0
    rate = first["bytes"] / (first["transfer_s"] - sessions)
    return {
        "bytes": first["bytes"],
        "send_s": first["transfer_s"],
        "sessions_s": sessions,
        "mbit": rate * 8 / 1e6,
        "utilisation": rate / link,
        "with_sessions": first["bytes"] / first["transfer_s"] / link,
        "stripes": first.get("stripes") or row.get("stripes"),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_rtt: dict[str, Any] = {}
    for rtt in RTTS_MS:
        firsts = [f for r in rows if r["rtt_ms"] == rtt and (f := round_zero(r))]
        if not firsts:
            continue
        shares = [f["utilisation"] for f in firsts]
        by_rtt[f"{rtt}ms"] = {
            "runs": len(firsts),
            "failed": sum(not r["ok"] for r in rows if r["rtt_ms"] == rtt),
            "stripes": statistics.median(f["stripes"] for f in firsts),
            "mbit": statistics.median(f["mbit"] for f in firsts),
            "utilisation": statistics.median(shares),
            "utilisation_min": min(shares),
            "with_sessions": statistics.median(f["with_sessions"] for f in firsts),
            "sessions_s": statistics.median(f["sessions_s"] for f in firsts),
        }
    return {"link_mbit": MBIT, "size_mib": SIZE_MIB, "policy": POLICY, "rtts": by_rtt}


def main() -> int:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    points = [Point(rtt, MBIT, "memwriter", SIZE_MIB, "low") for rtt in RTTS_MS]
    run_grid(points, (POLICY,), repeats, RUNS, print)
    result = summary(list(read_rows(RUNS)))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"round 0 of a {SIZE_MIB} MiB state over {MBIT} Mbit/s (medians):")
    for rtt, r in result["rtts"].items():
        print(
            f"  {rtt:>6}: {r['mbit']:.0f} Mbit/s = {r['utilisation']:.1%} of the link "
            f"(least {r['utilisation_min']:.1%}) over {r['stripes']:g} stripes, {r['runs']} runs; "
            f"{r['with_sessions']:.1%} with the {r['sessions_s']:.2f} s its sessions took "
            "beyond the dump"
        )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
