"""Consecutive lazy restores on the lab: the proof issue 23 asks before lazy restore could be
the default.

One memwriter (256 MiB, all of it hot, dirtying 8 MiB/s) goes back and forth between east-1
and west-1, every migration iterative (pre-copy rounds, so that each restore reads page
files the target patched in place, with pages sent ahead while the final dump ran) and
restored lazily; after each, memwriter checks its whole state against its own checksum on
the node it moved to (a page the lazy-pages daemon failed to fill, or the data path got
wrong, fails the check). The WAN is set to 10 ms / 1 Gbit/s for the run (the rounds of
256 MiB then take seconds; the restore does not use the WAN) and put back.

Run (as root, lab up): .venv/bin/python benchmarks/lazy_restores.py [COUNT] (100)
Prints one line per migration and the summary; writes bench-results/lazy-restores.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import MEMWRITER_IMAGE
from whimbrel.backends.lab.system import docker
from whimbrel.backends.lab.topology import LabNode, build_topology
from whimbrel.backends.lab.workloads import memwriter_status

OUT = Path(__file__).resolve().parents[1] / "bench-results" / "lazy-restores.json"
NODES = ("east-1", "west-1")
NAME, PORT = "lazybench", 7291


def _node(name: str) -> LabNode:
    return build_topology().node(name)


def _clean() -> None:
    for node in NODES:
        docker(_node(node).docker_host, "rm", "-f", NAME, check=False)


def _start(node: str) -> None:
    docker(_node(node).docker_host, "run", "-d", "--name", NAME, "--network", "host",
           MEMWRITER_IMAGE, "memwriter", "--size", "256MiB", "--hot", "256MiB",
           "--rate", "8MiB/s", "--port", str(PORT))  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            memwriter_status(_node(node).lan_address, PORT)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _migrate(config: str, src: str, dst: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "migrate",
         f"{src}/{NAME}", "--to", dst, "--mode", "iterative", "--lazy-restore",
         "--yes", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not events or events[-1]["event"] != "MigrationFinished":
        return {"ok": False, "error": proc.stderr.strip()[-500:] or "no outcome"}
    return events[-1]


def run(count: int, config: str) -> dict:
    runs = []
    src, dst = NODES
    _clean()
    _start(src)
    counter = memwriter_status(_node(src).lan_address, PORT, verify=True).counter
    for number in range(count):
        done = _migrate(config, src, dst)
        where = done.get("running_on", src) if done.get("ok") else src
        try:
            status = memwriter_status(_node(where).lan_address, PORT, verify=True, timeout=60)
            verified, progressed = bool(status.verified), status.counter > counter
            counter = status.counter
        except OSError as exc:
            verified, progressed = False, False
            done["error"] = f"{done.get('error')}; memwriter on {where}: {exc}"
        row = {
            "n": number,
            "src": src,
            "dst": dst,
            "ok": bool(done.get("ok")) and where == dst and verified and progressed,
            "lazy_restore": done.get("lazy_restore"),
            "rounds": done.get("rounds"),
            "verified": verified,
            "downtime_s": done.get("downtime_s"),
            "restore_s": (done.get("downtime_parts") or {}).get("restore_s"),
            "lazy_fill_s": done.get("lazy_fill_s"),
            "error": done.get("error"),
        }
        runs.append(row)
        print(json.dumps(row), flush=True)
        if where != src:
            src, dst = dst, src
    restores = [r["restore_s"] for r in runs if r["restore_s"] is not None]
    downtimes = [r["downtime_s"] for r in runs if r["downtime_s"] is not None]
    return {
        "count": count,
        "lazy_restores": sum(bool(r["lazy_restore"]) for r in runs),
        "failures": sum(not r["ok"] for r in runs),
        "verified": sum(r["verified"] for r in runs),
        "restore_s_median": statistics.median(restores) if restores else None,
        "restore_s_max": max(restores) if restores else None,
        "downtime_s_median": statistics.median(downtimes) if downtimes else None,
        "runs": runs,
    }


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    status = lab.status()
    if not status["up"]:
        print("the lab is not up: `whimbrel lab up` (as root) first", file=sys.stderr)
        return 2
    lab.set_wan(10, 1000)
    try:
        result = run(count, status["config"])
    finally:
        _clean()
        lab.set_wan(status["rtt_ms"], status["bandwidth_mbit"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "runs"}
    print(json.dumps(summary))
    return 0 if result["failures"] == 0 and result["lazy_restores"] == count else 1


if __name__ == "__main__":
    sys.exit(main())
