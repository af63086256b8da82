"""`whimbrel model`: the headless planner, its JSON, its table and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from whimbrel.app.cli import main
from whimbrel.backends.model import POLICIES, ModelInputs, plan

EXAMPLE = ["--size", "512MiB", "--dirty-rate", "8MiB/s", "--bandwidth", "200Mbit", "--rtt", "50ms"]


def run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["model", *EXAMPLE, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_documented_keys_and_matches_the_backend_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("verdict", "reason", "rounds", "downtime_s", "total_time_s", "bytes_sent"):
        assert key in data
    assert "floor_bytes" in data and "per_round" in data
    assert [set(r) >= {"round", "bytes", "seconds"} for r in data["per_round"]] == [True] * len(
        data["per_round"]
    )
    assert data["per_round"][-1]["round"] == data["rounds"]
    # The README's example, worked by hand in test_model.py: 5 rounds, 141 ms, 772 MiB.
    assert (data["verdict"], data["rounds"], len(data["per_round"])) == ("iterate", 5, 6)
    assert data["downtime_s"] == pytest.approx(0.1414860)
    assert data["bytes_sent"] / 2**20 == pytest.approx(772.163031)
    expected = plan(
        ModelInputs(size=512 * 2**20, dirty_rate=8 * 2**20, bandwidth=25e6, rtt=0.05)
    ).to_json()
    assert data == json.loads(json.dumps(expected))


def test_every_option_reaches_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--round-trips", "2",
        "--dump-time", "20ms",
        "--final-dump-time", "15ms",
        "--restore-time", "0.5s",
        "--downtime-target", "1s",
        "--max-rounds", "3",
        "--policy", "qemu",
        "--working-set", "1GiB",
        "--dump-rate", "1GiB/s",
        "--incremental-dumps",
        "--floor-tolerance", "10%",
        "--round-overhead", "300ms",
        "--first-round-extra", "1.5s",
        "--final-round-trips", "2",
        "--brownout-weight", "1",
        "--distinct-share", "40%",
        "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["policy"] == "qemu"
    assert data["inputs"] == {
        "size": 512 * 2**20,
        "dirty_rate": 8 * 2**20,
        "bandwidth": 25e6,
        "rtt": 0.05,
        "round_trips": 2.0,
        "dump_time": 0.02,
        "restore_time": 0.5,
        "downtime_target": 1.0,
        "max_rounds": 3,
        "working_set": 2.0**30,
        "dump_rate": 2.0**30,
        "incremental_dumps": True,
        "floor_tolerance": 0.1,
        "round_overhead": 0.3,
        "first_round_extra": 1.5,
        "final_round_trips": 2.0,
        "brownout_weight": 1.0,
        "distinct_share": 0.4,
        "final_dump_time": 0.015,
    }


def test_table_shows_verdict_reason_and_per_round_bars(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 0
    assert "verdict   iterate" in out
    assert "reason" in out and "meets the 300 ms target" in out
    assert "5 final" in out and "█" in out


def test_compare_prints_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--compare")
    assert code == 0
    for name in POLICIES:
        assert f"\n{name} " in out
    code, out, _ = run(capsys, "--compare", "--json")
    assert list(json.loads(out)) == list(POLICIES)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--size", "-5MiB", "size: '-5MiB' must be zero or more"),
        ("--bandwidth", "0Mbit", "bandwidth: '0Mbit' must be more than zero"),
        ("--rtt", "nan", "rtt: cannot read 'nan'"),
        ("--dirty-rate", "8XiB/s", "unknown unit"),
        ("--round-trips", "nan", "round trips: 'nan' must be a finite number"),
        ("--max-rounds", "2.5", "max rounds: '2.5' must be a whole number"),
        ("--downtime-target", "3 parsecs", "downtime target"),
        ("--working-set", "0B", "working set: '0B' must be more than zero"),
    ],
)
def test_bad_values_get_one_clear_error_and_exit_2(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    code, out, err = run(capsys, f"{flag}={value}")
    assert code == 2
    assert out == ""
    assert err.startswith("whimbrel: ") and message in err
    assert err.count("\n") == 1


def test_unknown_policy_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["model", *EXAMPLE, "--policy", "greedy"])
    assert exited.value.code == 2
    assert "invalid choice: 'greedy'" in capsys.readouterr().err


def test_headless_model_command_does_not_import_textual() -> None:
    code = (
        "import sys; from whimbrel.app.cli import main; "
        f"rc = main(['model', *{EXAMPLE!r}, '--json']); "
        "assert rc == 0; assert 'textual' not in sys.modules, 'textual imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
