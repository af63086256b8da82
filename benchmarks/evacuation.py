"""An on-call evacuation, timed against its plan: the on-call issue's must-show.

east-1 holds six containers (the lab's `kv` and `hot`, two more Redis holding 60 MB each,
two memwriters of 64 MiB dirtying 2 MiB/s); `whimbrel evacuate east-1 --to west` empties it,
then `whimbrel evacuate west --to east-1` brings them back: two evacuations a run, each read
as a script would (`--json`). Per evacuation: its wall time against the plan's total, and
against the migrations' own times added up (what one after another would cost at least);
per migration: its time and downtime against the plan's. Goals: wall within 20% of the plan;
wall at most 0.6x the migrations' own times.

Run (as root, lab up): .venv/bin/python benchmarks/evacuation.py [RUNS] (5)
Prints a line per evacuation and the summary; writes bench-results/evacuation{-runs.jsonl,.json}.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import MEMWRITER_IMAGE, REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.lab.workloads import load_redis

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"
TOPOLOGY = build_topology()
EAST1 = TOPOLOGY.node("east-1")
REDIS = {"evac-kv1": 6391, "evac-kv2": 6392}
MEMWRITERS = {"evac-mw1": 7281, "evac-mw2": 7282}
HOST = ("run", "-d", "--network", "host", "--name")


def start_extras() -> None:
    for name, port in REDIS.items():
        docker(EAST1.docker_host, *HOST, name, REDIS_IMAGE, "redis-server", REDIS_CONF,
               "--port", str(port))  # fmt: skip
    for name, port in MEMWRITERS.items():
        docker(EAST1.docker_host, *HOST, name, MEMWRITER_IMAGE, "memwriter", "--size", "64MiB",
               "--hot", "32MiB", "--rate", "2MiB/s", "--port", str(port))  # fmt: skip
    for port in REDIS.values():
        for _ in range(100):
            try:
                load_redis(EAST1.lan_address, port, 60_000, value_size=1000)
                break
            except OSError:
                time.sleep(0.2)
    time.sleep(2)  # the memwriters' first pass over their state


def remove_extras() -> None:
    for node in TOPOLOGY.nodes:
        for name in (*REDIS, *MEMWRITERS):
            docker(node.docker_host, "rm", "-f", name, check=False)


def evacuate(config: str, source: str, to: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "evacuate", source,
         "--to", to, "--yes", "--json"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    planned = next((e for e in events if e["event"] == "EvacuationPlanned"), None)
    done = next((e for e in events if e["event"] == "EvacuationFinished"), None)
    if planned is None or done is None:
        return {"source": source, "ok": False, "error": proc.stderr[-1000:]}
    moves = {m["container"]: m for m in planned["moves"]}
    return {
        "source": source,
        "to": to,
        "ok": done["ok"],
        "concurrency": planned["concurrency"],
        "wall_s": done["wall_s"],
        "planned_s": planned["total_time_s"],
        "one_by_one_planned_s": planned["one_by_one_s"],
        "migrations_s": done["migrations_s"],
        "moves": [
            {
                "container": r["container"],
                "ok": r["ok"],
                "duration_s": r["ended_s"] - r["started_s"] if r["started_s"] is not None else None,
                "planned_duration_s": moves[r["container"]]["duration_s"],
                "started_s": r["started_s"],
                "planned_start_s": moves[r["container"]]["start_s"],
                "downtime_s": r["downtime_s"],
                "predicted_downtime_s": r["predicted_downtime_s"],
                "error": r["error"],
            }
            for r in done["results"]
        ],
    }


def main(runs: int) -> None:
    status = lab.status()
    if not status["up"]:
        sys.exit("the lab is not up: `whimbrel lab up`")
    config = status["config"]
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    with (RESULTS / "evacuation-runs.jsonl").open("w") as out:
        for run in range(runs):
            remove_extras()
            start_extras()
            try:
                for source, to in (("east-1", "west"), ("west", "east-1")):
                    row = {"run": run, **evacuate(config, source, to)}
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    if not row["ok"]:
                        print(f"run {run} {source}: FAILED {row.get('error') or row['moves']}")
                        continue
                    print(
                        f"run {run} {source} -> {to}: {len(row['moves'])} at "
                        f"{row['concurrency']} at once, wall {row['wall_s']:.1f} s, planned "
                        f"{row['planned_s']:.1f} s ({_error(row):+.0%}), own times "
                        f"{row['migrations_s']:.1f} s ({row['wall_s'] / row['migrations_s']:.2f}x)"
                    )
            finally:
                remove_extras()
    good = [r for r in rows if r["ok"]]
    summary = {
        "evacuations": len(rows),
        "failed": len(rows) - len(good),
        "plan_error_median": statistics.median(abs(_error(r)) for r in good) if good else None,
        "plan_error_most": max((abs(_error(r)) for r in good), default=None),
        "wall_over_own_times_median": statistics.median(
            r["wall_s"] / r["migrations_s"] for r in good
        )
        if good
        else None,
        "wall_over_own_times_most": max(
            (r["wall_s"] / r["migrations_s"] for r in good), default=None
        ),
        "wall_s_median": statistics.median(r["wall_s"] for r in good) if good else None,
        "one_by_one_planned_s_median": statistics.median(r["one_by_one_planned_s"] for r in good)
        if good
        else None,
        "goals": {"plan_error": 0.20, "wall_over_own_times": 0.6},
    }
    (RESULTS / "evacuation.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def _error(row: dict[str, Any]) -> float:
    return row["wall_s"] / row["planned_s"] - 1


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
