"""Benchmark (not a test): the console's cost on the lab.

1. Launch to first full table: `whimbrel` started in a pseudo-terminal (120x40), until every
   node has answered and the table shows their containers (the console notes the moment in
   $WHIMBREL_TIMINGS). Several launches; the median is reported. Goal: under 2 s.
2. Idle CPU: one console left open on the lab's 4 nodes, its selected container charted (RTT
   probe and dirty-rate sample each second, so both charts redraw at 1 Hz), the inventory
   refreshed every 5 s. CPU time of the console process (all its threads) over 60 s, from
   /proc. Goal: under 5% of one core.

Run as root with the lab up:  .venv/bin/python benchmarks/console_cpu.py [--window 60]
Prints a summary and writes bench-results/console.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results" / "console.json"
COLUMNS, ROWS = 120, 40
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Console:
    """A console process on a pseudo-terminal whose output is drained (and counted)."""

    pid: int
    fd: int
    timings: Path
    started: float
    output_bytes: int = 0
    _reader: threading.Thread | None = field(default=None, repr=False)

    def drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output_bytes += len(chunk)

    def milestone(self, name: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.timings.exists():
                for line in self.timings.read_text().splitlines():
                    event = json.loads(line)
                    if event["event"] == name:
                        return event["t"]
            time.sleep(0.02)
        raise SystemExit(f"console_cpu: no {name} within {timeout} s (is the lab up?)")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def quit(self) -> int:
        os.write(self.fd, b"q")
        deadline = time.time() + 10
        while time.time() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 15)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def launch(config: Path, workdir: Path, run: int) -> Console:
    timings = workdir / f"timings-{run}.jsonl"
    env = {
        **os.environ,
        "WHIMBREL_TIMINGS": str(timings),
        "XDG_STATE_HOME": str(workdir / "state"),
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }
    started = time.time()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(
            sys.executable,
            [sys.executable, "-m", "whimbrel.app.cli", "--config", str(config), "--read-only"],
            env,
        )
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    console = Console(pid, fd, timings, started)
    console._reader = threading.Thread(target=console.drain, daemon=True)
    console._reader.start()
    return console


def bench_config(lab_config: Path, workdir: Path) -> Path:
    """The lab's config with the console polling its charts at 1 Hz."""
    text = lab_config.read_text()
    if "[console]" in text:
        raise SystemExit(f"console_cpu: {lab_config} already has a [console] table")
    path = workdir / "config.toml"
    path.write_text(text + '\n[console]\nrtt_every = "1s"\nrefresh = "5s"\n')
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/var/lib/wblab/config.toml", type=Path)
    parser.add_argument("--window", type=float, default=60.0, help="idle window, s (60)")
    parser.add_argument("--launches", type=int, default=5, help="launch-time runs (5)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="whimbrel-bench-") as tmp:
        workdir = Path(tmp)
        config = bench_config(args.config, workdir)

        launches, mounts = [], []
        for run in range(args.launches):
            console = launch(config, workdir, run)
            launches.append(console.milestone("first_full_table", 30) - console.started)
            mounts.append(console.milestone("mounted", 1) - console.started)
            console.quit()
            print(
                f"launch {run + 1}: first full table after {launches[-1]:.2f} s "
                f"(app up after {mounts[-1]:.2f} s: interpreter, imports, terminal)",
                flush=True,
            )

        console = launch(config, workdir, args.launches)
        console.milestone("first_full_table", 30)
        console.milestone("first_dirty_sample", 30)
        console.milestone("first_rtt_sample", 30)
        time.sleep(5)  # the dirty-rate helper and the RTT loop in their stride
        cpu0, out0, t0 = console.cpu_s(), console.output_bytes, time.monotonic()
        time.sleep(args.window)
        cpu1, out1, t1 = console.cpu_s(), console.output_bytes, time.monotonic()
        code = console.quit()

    elapsed = t1 - t0
    cpu_percent = 100 * (cpu1 - cpu0) / elapsed
    launch_s = statistics.median(launches)
    result = {
        "benchmark": "console_cpu",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "terminal": f"{COLUMNS}x{ROWS}",
        "nodes": 4,
        "charts_hz": 1.0,
        "idle_window_s": round(elapsed, 2),
        "idle_cpu_s": round(cpu1 - cpu0, 3),
        "idle_cpu_percent_of_one_core": round(cpu_percent, 2),
        "idle_cpu_goal_percent": 5.0,
        "terminal_output_bytes_per_s": round((out1 - out0) / elapsed),
        "launch_to_first_full_table_s": [round(x, 3) for x in launches],
        "launch_to_first_full_table_median_s": round(launch_s, 3),
        "launch_to_app_mounted_median_s": round(statistics.median(mounts), 3),
        "app_mounted_to_first_full_table_median_s": round(
            statistics.median(t - m for t, m in zip(launches, mounts, strict=True)), 3
        ),
        "launch_goal_s": 2.0,
        "exit_code": code,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"idle CPU: {cpu_percent:.2f}% of one core over {elapsed:.0f} s "
        f"(goal < 5%), {result['terminal_output_bytes_per_s']} B/s to the terminal\n"
        f"launch to first full table: median {launch_s:.2f} s of {len(launches)} (goal < 2 s); "
        f"of which the app up {result['launch_to_app_mounted_median_s']:.2f} s, then the "
        f"nodes' answers {result['app_mounted_to_first_full_table_median_s']:.2f} s\n"
        f"exit code on q: {code}; written {RESULTS.relative_to(ROOT)}"
    )
    return 0 if cpu_percent < 5 and launch_s < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
