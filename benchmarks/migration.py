"""Real migrations on the lab, both modes, predicted against measured.

For each workload (memwriter 256 MiB dirtying 8 MiB/s; Redis holding 300 MB under 200
writes/s) it migrates east-1 -> west-1 in iterative and stop-and-copy mode, and records the
downtime, brownouts, total time, bytes, rounds and link utilisation next to the model's
prediction. Run (as root, lab up): .venv/bin/python benchmarks/migration.py
Writes bench-results/migration.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import MEMWRITER_IMAGE, REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.lab.workloads import WriteLoad, load_redis

OUT = Path(__file__).resolve().parents[1] / "bench-results" / "migration.json"
EAST1, WEST1 = build_topology().node("east-1"), build_topology().node("west-1")
BENCH = ("run", "-d", "--name", "bench", "--network", "host")


def start(workload: str) -> WriteLoad | None:
    if workload == "memwriter":
        docker(EAST1.docker_host, *BENCH, MEMWRITER_IMAGE, "memwriter", "--size", "256MiB",
               "--hot", "128MiB", "--rate", "8MiB/s", "--port", "7272")  # fmt: skip
        time.sleep(2)
        return None
    docker(EAST1.docker_host, *BENCH, REDIS_IMAGE, "redis-server", REDIS_CONF, "--port", "6381")
    for _ in range(100):
        try:
            load_redis(EAST1.lan_address, 6381, 300_000, value_size=1000)
            break
        except OSError:
            time.sleep(0.2)
    return WriteLoad([(EAST1.lan_address, 6381), (WEST1.lan_address, 6381)], rate=200)


def run(config: str, workload: str, mode: str) -> dict:
    load = start(workload)
    if load:
        load.__enter__()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "migrate",
             "east-1/bench", "--to", "west-1", "--mode", mode, "--yes", "--json"],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    finally:
        if load:
            load.stop()
        for node in (EAST1, WEST1):
            docker(node.docker_host, "rm", "-f", "bench", check=False)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = events[-1]
    rounds = [e for e in events if e["event"] == "RoundFinished"]
    return {
        "workload": workload,
        "mode": mode,
        "ok": done["ok"],
        "downtime_s": done["downtime_s"],
        "predicted_downtime_s": done["predicted_downtime_s"],
        "client_longest_gap_s": load.longest_gap_s if load else None,
        "brownouts_s": done["brownouts_s"],
        "total_time_s": done["total_time_s"],
        "predicted_total_time_s": done["predicted_total_time_s"],
        "bytes_sent": done["bytes_sent"],
        "predicted_bytes": done["predicted_bytes"],
        "rounds": done["rounds"],
        "link_utilisation": [r["link_utilisation"] for r in rounds],
        "round_bytes": [r["sent_bytes"] for r in rounds],
        "round_planned_bytes": [r["planned_bytes"] for r in rounds],
        "error": done.get("error"),
    }


def main() -> None:
    status = lab.status()
    if not status["up"]:
        raise SystemExit("the lab is not up: `whimbrel lab up` (as root) first")
    results = []
    for workload in ("memwriter", "redis"):
        for mode in ("iterative", "stop-and-copy"):
            r = run(status["config"], workload, mode)
            results.append(r)
            gap = (
                f", client gap {r['client_longest_gap_s']:.2f} s"
                if r["client_longest_gap_s"]
                else ""
            )
            print(f"{workload:9} {mode:13} downtime {r['downtime_s'] or 0:6.2f} s "
                  f"(predicted {r['predicted_downtime_s'] or 0:5.2f}){gap}, rounds {r['rounds']}, "
                  f"brownouts {', '.join(f'{b:.2f}' for b in r['brownouts_s']) or '-'}, "
                  f"total {r['total_time_s']:.1f} s (predicted "
                  f"{r['predicted_total_time_s'] or 0:.1f}), {r['bytes_sent'] / 2**20:.0f} MiB "
                  f"(predicted {(r['predicted_bytes'] or 0) / 2**20:.0f}), link use "
                  f"{', '.join(f'{u:.0%}' for u in r['link_utilisation'])}")  # fmt: skip
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"rtt_ms": status["rtt_ms"], "bandwidth_mbit":
                               status["bandwidth_mbit"], "runs": results}, indent=2))  # fmt: skip
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
