"""`whimbrel bench --quick`, the benchmark's smoke run, as an operator runs it: real migrations
of every policy on the lab, each restored lazily, the runs recorded, a report made from them,
nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.migration_tools import no_leftovers
from whimbrel.backends.lab import lab as lab_module
from whimbrel.backends.model import POLICIES
from whimbrel.backends.research.grid import quick_grid

pytestmark = pytest.mark.lab


def _whimbrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "bench", *args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_quick_bench_migrates_every_policy_at_every_point_and_reports(
    lab: dict, tmp_path: Path
) -> None:
    results, report = tmp_path / "quick.jsonl", tmp_path / "quick.md"
    started = time.monotonic()
    run = _whimbrel("--quick", "--lazy-restore", "--results", str(results))
    elapsed = time.monotonic() - started
    print(f"whimbrel bench --quick: {elapsed:.0f} s")  # the smoke check's figure (goal < 600 s)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {(r["point"], r["policy"]) for r in rows} == {
        (p.key, policy) for p in quick_grid() for policy in POLICIES
    }
    assert all(r["ok"] and r["downtime_s"] > 0 for r in rows), [r["error"] for r in rows]
    # Through the lazy restore, each verified after it (memwriter's whole state, redis's keys).
    assert {r["lazy_restore"] for r in rows} == {True}
    assert all(r["measured_rounds"][-1]["final"] for r in rows)
    # The target's answer on its way back is told apart (half the path's RTT), and the
    # target's own time of serving is there to check it by (benchmarks/downtime.py does).
    for r in rows:
        rtt = r["measured_rounds"][-1]["rtt"]
        assert r["downtime_parts"]["answer_s"] == pytest.approx(rtt / 2), r["point"]
        assert 0 < r["served_by_clocks_s"] < r["downtime_s"], r["point"]
    # Stop-and-copy makes no pre-copy round; the iterating policies at least one.
    assert {r["rounds"] == 0 for r in rows if r["policy"] == "stop-and-copy"} == {True}

    made = _whimbrel("report", "--quick", "--results", str(results), "--report", str(report))
    assert made.returncode == 0, made.stderr
    text = report.read_text()
    assert "## Goals, checked" in text and "## Prediction error" in text
    assert f"{len(quick_grid())} grid points (of {len(quick_grid())}) with every policy" in text
    assert no_leftovers("east-1") == [] and no_leftovers("west-1") == []
    status = lab_module.status()  # the lab's WAN is back to what it was
    assert (status["rtt_ms"], status["bandwidth_mbit"]) == (lab["rtt_ms"], lab["bandwidth_mbit"])
