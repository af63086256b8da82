"""Benchmark (not a test): the console's cost on the lab.

1. Launch to first full table: `whimbrel` started in a pseudo-terminal (120x40), until every
   node has answered and the table shows their containers (the console notes the moment in
   $WHIMBREL_TIMINGS). Several launches; the median is reported. Goal: under 2 s.
2. Idle CPU, screen by screen: a console left open on the lab, its selected container charted
   (RTT probe and dirty-rate sample each second, so the charts redraw at 1 Hz), the inventory
   refreshed every 5 s, on the main screen, then (a fresh console each) on the preview (`p`),
   the history (`h`), the help (`?`) and the evacuate screen (`space`, `e`: its measuring done
   first). CPU time of the console process (all its threads) over the window, from /proc.
   Goal: under 5% of one core on every screen.

3. At scale: `--containers-per-node N` starts N small Redis on every node of the lab first
   (and removes them after); with a lab of 20 nodes (`whimbrel lab up --nodes east=10,west=10`)
   and 10 a node, the console lists 200 containers. Same goals.

Run as root with the lab up:
  .venv/bin/python benchmarks/console_cpu.py [--window 60] [--screens main,preview,...]
      [--containers-per-node N]
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from whimbrel.backends.lab import lab
from whimbrel.backends.lab.images import REDIS_CONF, REDIS_IMAGE
from whimbrel.backends.lab.system import docker

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results" / "console.json"
COLUMNS, ROWS = 120, 40
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Console:
    """A console process on a pseudo-terminal whose output is drained (and counted).
    benchmarks/console_cpu_fake.py drives its fake-backend console with it too."""

    pid: int
    fd: int
    timings: Path
    started: float
    output_bytes: int = 0

    @classmethod
    def spawn(cls, argv: list[str], env: dict[str, str], timings: Path) -> Console:
        started = time.time()
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(ROOT)
            os.execve(argv[0], argv, {**env, "TERM": "xterm-256color", "COLORTERM": "truecolor"})
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        console = cls(pid, fd, timings, started)
        threading.Thread(target=console.drain, daemon=True).start()
        return console

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

    def idle(
        self, keys: bytes, settle: float, window: float, at_start: Callable[[], None] = lambda: None
    ) -> dict[str, float]:
        """Once the table and both charts have data: `keys` typed, `settle` seconds for the
        screen's own start-up work, then the console's CPU and terminal output over `window`
        seconds (`at_start` called as it opens); the console quits after."""
        for name in ("first_full_table", "first_dirty_sample", "first_rtt_sample"):
            self.milestone(name, 30)
        for key in keys:
            os.write(self.fd, bytes([key]))
            time.sleep(0.5)
        time.sleep(settle)
        at_start()
        cpu0, out0, t0 = self.cpu_s(), self.output_bytes, time.monotonic()
        time.sleep(window)
        cpu1, out1, t1 = self.cpu_s(), self.output_bytes, time.monotonic()
        self.quit()
        elapsed = t1 - t0
        return {
            "idle_window_s": round(elapsed, 2),
            "idle_cpu_s": round(cpu1 - cpu0, 3),
            "idle_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / elapsed, 2),
            "terminal_output_bytes_per_s": round((out1 - out0) / elapsed),
        }

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


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core, idle and iowait
    left out)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def launch(config: Path, workdir: Path, run: int) -> Console:
    timings = workdir / f"timings-{run}.jsonl"
    env = {**os.environ, "WHIMBREL_TIMINGS": str(timings), "XDG_STATE_HOME": str(workdir / "state")}
    # Not --read-only: a read-only console never opens the evacuate screen (its figure was the
    # main screen's). The keys sent here open screens and never confirm a move.
    argv = [sys.executable, "-m", "whimbrel.app.cli", "--config", str(config)]
    return Console.spawn(argv, env, timings)


# The keys that reach each screen from the main one, and how long its own start-up work
# (the preview's and the evacuation's probes) may take before the window opens.
SCREENS: dict[str, tuple[bytes, float]] = {
    "main": (b"", 5.0),
    "preview": (b"p", 15.0),
    "history": (b"h", 5.0),
    "help": (b"?", 5.0),
    "evacuate": (b" e", 20.0),
}


def idle(config: Path, workdir: Path, run: int, screen: str, window: float) -> dict[str, float]:
    """A fresh console on `screen`, its CPU and terminal output over `window` seconds."""
    return launch(config, workdir, run).idle(*SCREENS[screen], window)


SCALE_NAME, SCALE_PORT = "scale", 16400


def scale_containers(per_node: int, start: bool) -> int:
    """Start (or remove) `per_node` small Redis on each node of the lab; how many in all."""
    nodes = lab.status().get("nodes", [])
    for node in nodes:
        host = f"unix://{node['docker_socket']}"
        for i in range(per_node):
            name = f"{SCALE_NAME}-{i}"
            docker(host, "rm", "-f", name, check=False)
            if start:
                docker(host, "run", "-d", "--network", "host", "--name", name, REDIS_IMAGE,
                       "redis-server", REDIS_CONF, "--port", str(SCALE_PORT + i))  # fmt: skip
    return len(nodes) * per_node


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
    parser.add_argument("--screens", default=",".join(SCREENS), help="idle CPU on these screens")
    parser.add_argument(
        "--containers-per-node", type=int, default=0, help="small Redis started on every node"
    )
    args = parser.parse_args()
    added = scale_containers(args.containers_per_node, start=True)
    try:
        return measure(args, added)
    finally:
        scale_containers(args.containers_per_node, start=False)


def measure(args: argparse.Namespace, added: int) -> int:
    with tempfile.TemporaryDirectory(prefix="whimbrel-bench-") as tmp:
        workdir = Path(tmp)
        config = bench_config(args.config, workdir)

        launches, mounts, console_cpu, busy_cores = [], [], [], []
        for run in range(args.launches):
            busy0 = machine_busy_s()
            console = launch(config, workdir, run)
            launches.append(console.milestone("first_full_table", 30) - console.started)
            # Whose work the wait was: the console's own, and the machine's (on the lab, every
            # node's sshd, helper and dockerd share this machine's cores with the console).
            console_cpu.append(console.cpu_s())
            busy_cores.append((machine_busy_s() - busy0) / (time.time() - console.started))
            mounts.append(console.milestone("mounted", 1) - console.started)
            console.quit()
            print(
                f"launch {run + 1}: first full table after {launches[-1]:.2f} s "
                f"(app up after {mounts[-1]:.2f} s: interpreter, imports, terminal; the "
                f"console's CPU {console_cpu[-1]:.2f} s; the machine busy "
                f"{busy_cores[-1]:.2f} of its {os.cpu_count()} cores meanwhile)",
                flush=True,
            )

        screens = {}
        for i, screen in enumerate(args.screens.split(",")):
            if screen not in SCREENS:
                raise SystemExit(f"console_cpu: no screen {screen!r} ({', '.join(SCREENS)})")
            screens[screen] = idle(config, workdir, args.launches + i, screen, args.window)
            print(
                f"idle on {screen}: {screens[screen]['idle_cpu_percent_of_one_core']:.2f}% of "
                f"one core, {screens[screen]['terminal_output_bytes_per_s']} B/s to the terminal",
                flush=True,
            )

    launch_s = statistics.median(launches)
    worst = max(s["idle_cpu_percent_of_one_core"] for s in screens.values())
    nodes = args.config.read_text().splitlines().count("[[nodes]]")
    result = {
        "benchmark": "console_cpu",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "terminal": f"{COLUMNS}x{ROWS}",
        "nodes": nodes,
        "containers_added": added,
        "charts_hz": 1.0,
        "screens": screens,
        "idle_cpu_goal_percent": 5.0,
        "launch_to_first_full_table_s": [round(x, 3) for x in launches],
        "launch_to_first_full_table_median_s": round(launch_s, 3),
        "launch_to_app_mounted_median_s": round(statistics.median(mounts), 3),
        "app_mounted_to_first_full_table_median_s": round(
            statistics.median(t - m for t, m in zip(launches, mounts, strict=True)), 3
        ),
        "launch_console_cpu_median_s": round(statistics.median(console_cpu), 3),
        "launch_machine_busy_cores_median": round(statistics.median(busy_cores), 2),
        "cpus": os.cpu_count(),
        "launch_goal_s": 2.0,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"idle CPU: at most {worst:.2f}% of one core on {len(screens)} screens (goal < 5%)\n"
        f"launch to first full table: median {launch_s:.2f} s of {len(launches)} (goal < 2 s); "
        f"of which the app up {result['launch_to_app_mounted_median_s']:.2f} s, then the "
        f"nodes' answers {result['app_mounted_to_first_full_table_median_s']:.2f} s; the "
        f"console's CPU {result['launch_console_cpu_median_s']:.2f} s, the machine busy "
        f"{result['launch_machine_busy_cores_median']:.2f} of {os.cpu_count()} cores\n"
        f"written {RESULTS.relative_to(ROOT)}"
    )
    return 0 if worst < 5 and launch_s < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
