"""A node emptied for real: east-1 holding six containers (three Redis under client ledgers,
three memwriters) evacuated to the west cluster by `whimbrel evacuate`, several at once; then
the west evacuated back to east-1 the same way, leaving the lab as the other tests expect it
(`kv` and `hot` on east-1)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.lab.migration_tools import (
    NODES,
    no_leftovers,
    remove_everywhere,
    running_on,
    start_memwriter,
    start_redis,
)
from whimbrel.backends.lab.workloads import WriteLoad, memwriter_status, missing_writes

pytestmark = pytest.mark.lab
EAST1 = NODES["east-1"]
WEST = ("west-1", "west-2")
# The lab's own `kv` and `hot` (lab.py) and four more.
REDIS = {"kv": 6379, "evac-kv1": 6391, "evac-kv2": 6392}
MEMWRITERS = {"hot": 7070, "evac-mw1": 7281, "evac-mw2": 7282}
EXTRA = ("evac-kv1", "evac-kv2", "evac-mw1", "evac-mw2")
TARGET_ONLY = "t:"  # the ledger of the clients that talk only to the west's nodes
FIGURES = Path(__file__).resolve().parents[2] / "bench-results" / "evacuation-test.json"


def evacuate(config: str, *args: str) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "evacuate", *args,
         "--yes", "--json"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events, f"evacuate printed no events: {proc.stderr[-2000:]}"
    return proc.returncode, events


def test_a_node_evacuated_to_the_other_cluster_keeps_every_write_and_every_memory(
    lab: dict,
) -> None:
    assert running_on("kv") == ["east-1"] and running_on("hot") == ["east-1"]
    try:
        for name in ("evac-kv1", "evac-kv2"):
            start_redis("east-1", name, REDIS[name])
        for name in ("evac-mw1", "evac-mw2"):
            start_memwriter(name, EAST1, MEMWRITERS[name], size="64MiB", hot="32MiB")
        before = {n: memwriter_status(EAST1, p, verify=True) for n, p in MEMWRITERS.items()}
        west = [NODES[n] for n in WEST]
        with ExitStack() as loads:
            ledgers = {
                name: (
                    loads.enter_context(WriteLoad([(a, port) for a in (EAST1, *west)], rate=100)),
                    loads.enter_context(
                        WriteLoad([(a, port) for a in west], rate=50, prefix=TARGET_ONLY)
                    ),
                )
                for name, port in REDIS.items()
            }
            time.sleep(1)
            code, events = evacuate(lab["config"], "east-1", "--to", "west")
            time.sleep(1.5)
        planned, done = events[0], events[-1]
        assert planned["event"] == "EvacuationPlanned" and done["event"] == "EvacuationFinished"
        assert code == 0, done
        assert len(planned["moves"]) == 6 and planned["stays"] == []
        assert planned["concurrency"] > 1
        where = {r["container"].split("/")[1]: r["running_on"] for r in done["results"]}
        assert set(where) == {*REDIS, *MEMWRITERS} and set(where.values()) <= set(WEST)
        for name, target in where.items():
            assert running_on(name) == [target]
        for name, (anywhere, target_only) in ledgers.items():
            address = NODES[where[name]]
            assert missing_writes(address, REDIS[name], anywhere.acked) == []
            assert target_only.acked, f"{name}: the target's own client never got an answer"
            assert missing_writes(address, REDIS[name], target_only.acked, prefix=TARGET_ONLY) == []
        for name, port in MEMWRITERS.items():
            after = memwriter_status(NODES[where[name]], port, verify=True)
            assert after.verified and after.counter > before[name].counter
        for node in ("east-1", *WEST):
            assert no_leftovers(node) == []
        # Several at once pays off: the migrations' own times add up to far more than the wall.
        assert done["wall_s"] <= 0.6 * done["migrations_s"], done
        FIGURES.parent.mkdir(exist_ok=True)
        figures = {
            "wall_s": done["wall_s"],
            "planned_s": planned["total_time_s"],
            "one_by_one_planned_s": planned["one_by_one_s"],
            "migrations_s": done["migrations_s"],
            "concurrency": planned["concurrency"],
            "longest_client_gap_s": max(a.longest_gap_s for a, _ in ledgers.values()),
        }
        FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"evacuation of east-1: {json.dumps(figures)}")
    finally:
        back, events = evacuate(lab["config"], "west", "--to", "east-1")
        assert back == 0, events[-1]
        for name in EXTRA:
            remove_everywhere(name)
    assert running_on("kv") == ["east-1"] and running_on("hot") == ["east-1"]
