"""The benchmark report is made from recorded runs alone, and says where a goal is missed."""

from __future__ import annotations

from whimbrel.backends.bench import Point, quick_grid
from whimbrel.backends.bench_report import report


def _row(policy: str, downtime: float, total: float, rtt: float = 100) -> dict:
    point = Point(rtt, 200, "memwriter", 64, "high")
    return {
        "point": point.key, "rtt_ms": rtt, "bandwidth_mbit": 200, "workload": "memwriter",
        "size_mib": 64, "dirty": "high", "policy": policy, "repeat": 0, "ok": True,
        "error": None, "downtime_s": downtime, "predicted_downtime_s": downtime * 1.1,
        "rounds": 2, "predicted_rounds": 2, "brownouts_s": [0.2, 0.2], "total_time_s": total,
        "predicted_total_time_s": total, "bytes_sent": 80 * 2**20, "predicted_bytes": 8e7,
        "client_longest_gap_s": None, "inputs": None,
        "measured_rounds": [
            {"bytes": 6e7, "transfer_s": 2.5, "throughput": 25e6, "rtt": 0.1, "final": False,
             "dump_s": 0.25, "dumped_bytes": 6.7e7},
            {"bytes": 1e6, "transfer_s": 0.2, "throughput": 25e6, "rtt": 0.1, "final": True,
             "dump_s": 0.25, "dumped_bytes": 6.7e7, "restore_s": 0.4},
        ],
    }  # fmt: skip


def test_the_report_flags_a_point_where_latency_aware_is_dominated_and_far_from_the_best():
    rows = [_row("latency-aware", 2.0, 30), _row("phaul", 1.0, 20), _row("stop-and-copy", 4, 5)]
    text = report(rows, "whimbrel bench report")
    assert "DOMINATED by phaul" in text and "MORE than 5%" in text
    assert "## Prediction error" in text and "## Calibrated constants" in text
    assert "\x1b" not in text  # charts are plain text


def test_the_quick_grid_is_small_and_covers_both_rtt_ends():
    points = quick_grid()
    assert len(points) <= 4 and {p.rtt_ms for p in points} == {20, 100}
