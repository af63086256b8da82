"""The CPU cost of one dirty-rate sample per MiB of container memory.

Run (as root, gcc installed): .venv/bin/python benchmarks/dirty_cost.py
Builds memwriter, runs one each of 64, 256 and 1024 MiB (all hot, 8 MiB/s), measures each with
the node helper exactly as a node runs it (`python3 -` with the script on stdin), and prints
and writes bench-results/dirty_cost.json: the helper's CPU seconds (user + system) per sample,
and per MiB of the memory it measured, by the method this kernel offers. It also times the
soft-dirty pass alone (pagemap read, then clear_refs) in this process: where the kernel does not
track the bits, clear_refs still walks the page tables, so that is near the cost the
soft-dirty method would have here.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import types
from pathlib import Path

from whimbrel.backends.dirty import DirtySample, helper_args, parse_line, script_text, summarize

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "dirty_cost.json"
SIZES_MIB = (64, 256, 1024)
RATE_MIB = 8
SAMPLES = 5
MiB = 2**20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_helper() -> types.ModuleType:
    helper = types.ModuleType("dirtyrate")
    exec(compile(script_text(), "dirtyrate.py", "exec"), helper.__dict__)
    return helper


def soft_dirty_pass_ms_per_mib(helper: types.ModuleType, pid: int) -> float:
    sampler = helper.SoftDirty()
    sampler.sample([pid])
    costs = []
    for _ in range(SAMPLES):
        before = time.process_time()
        _, live = sampler.sample([pid])
        costs.append((time.process_time() - before) / (live * helper.PAGE / MiB))
    return statistics.median(costs) * 1e3


def measure(binary: Path, size_mib: int, helper: types.ModuleType) -> dict:
    argv = [str(binary), "--size", f"{size_mib}MiB", "--hot", f"{size_mib}MiB"]
    argv += ["--rate", f"{RATE_MIB}MiB/s", "--port", str(free_port())]
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline(), "memwriter did not start"
        done = subprocess.run(
            ["python3", "-", *helper_args(writer.pid, seconds=SAMPLES)],
            input=script_text(),
            capture_output=True,
            text=True,
            check=True,
        )
        soft_dirty_ms = soft_dirty_pass_ms_per_mib(helper, writer.pid)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    records = [parse_line(line) for line in done.stdout.splitlines()]
    start = next(r for r in records if isinstance(r, dict) and r["type"] == "start")
    samples = [r for r in records if isinstance(r, DirtySample)]
    report = summarize(start["method"], samples, page_size=start["page_size"])
    memory_mib = report.memory_bytes / MiB
    per_mib = [s.cpu_s / (s.pages * start["page_size"] / MiB) for s in samples]
    return {
        "size_mib": size_mib,
        "method": report.method,
        "memory_mib": round(memory_mib, 1),
        "samples": len(samples),
        "cpu_s_per_sample": round(report.cpu_s_per_sample, 4),
        "cpu_ms_per_mib": round(statistics.median(per_mib) * 1e3, 4),
        "first_snapshot_cpu_s": round(start["cpu_s"], 4),  # startup, probe and baseline
        "soft_dirty_pass_cpu_ms_per_mib": round(soft_dirty_ms, 4),
        "set_rate_mib_s": RATE_MIB,
        "measured_rate_mib_s": round(report.bytes_per_s / MiB, 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        binary = Path(scratch) / "memwriter"
        source = ROOT / "backends" / "lab" / "memwriter.c"
        subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(source)], check=True)
        helper = load_helper()
        runs = [measure(binary, size, helper) for size in SIZES_MIB]
    for run in runs:
        print(
            f"{run['size_mib']:5d} MiB ({run['method']}): {run['cpu_s_per_sample']:.3f} CPU s per "
            f"sample, {run['cpu_ms_per_mib']:.3f} ms per MiB; "
            f"{run['measured_rate_mib_s']:.2f} MiB/s measured for {RATE_MIB} set; "
            f"soft-dirty pass {run['soft_dirty_pass_cpu_ms_per_mib']:.3f} ms per MiB"
        )
    figure = {
        "benchmark": "dirty_cost",
        "runs": runs,
        "cpu_ms_per_mib": statistics.median(run["cpu_ms_per_mib"] for run in runs),
        "python": subprocess.run(
            ["python3", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(f"median {figure['cpu_ms_per_mib']:.3f} ms of CPU per MiB per sample")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figure, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
