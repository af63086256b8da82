"""Independent measuring tools for lab tests: OpenSSH run inside a node's network namespace.

They use the lab's key and known_hosts (every node shares this machine's file system), so the
lab's fidelity is checked without any of whimbrel's own SSH or probe code.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap

from whimbrel.backends.lab.lab import KNOWN_HOSTS, SSH_KEY

SSH_OPTS = [
    "-T",
    "-i",
    str(SSH_KEY),
    "-o",
    f"UserKnownHostsFile={KNOWN_HOSTS}",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
]


def ssh_argv(address: str, command: str, *, known_hosts: str | None = None) -> list[str]:
    opts = list(SSH_OPTS)
    if known_hosts is not None:
        opts[opts.index(f"UserKnownHostsFile={KNOWN_HOSTS}")] = f"UserKnownHostsFile={known_hosts}"
    return ["ssh", *opts, f"root@{address}", command]


def ssh(address: str, command: str, *, timeout: float = 60, input: bytes | None = None) -> str:
    """Run a command on a node from the operator's host; raises on failure."""
    proc = subprocess.run(
        ssh_argv(address, command), input=input, capture_output=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"ssh {address} {command!r}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


def in_netns(netns: str, script: str, *args: str, timeout: float = 120) -> str:
    """Run a Python script inside a node's network namespace; returns its stdout."""
    proc = subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{netns}",
            sys.executable,
            "-c",
            textwrap.dedent(script),
            *args,
        ],
        capture_output=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"in {netns}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


_ECHO = """
import json, statistics, subprocess, sys, time
argv = json.loads(sys.argv[1])
p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
p.stdin.write(b"warm\\n"); p.stdout.readline()
samples = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); p.stdin.write(b"x\\n"); p.stdout.readline()
    samples.append(time.perf_counter() - t)
p.stdin.close(); p.wait()
print(json.dumps(samples))
"""

_STREAM = """
import json, subprocess, sys, time
argv, n = json.loads(sys.argv[1]), int(sys.argv[2])
p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
assert p.stdout.readline() == b"ready\\n"
buf = bytes(1 << 20); sent = 0; t = time.perf_counter()
while sent < n:
    k = min(len(buf), n - sent); p.stdin.write(buf[:k]); sent += k
assert p.stdout.readline() == b"done\\n"
print(time.perf_counter() - t)
"""


def echo_rtt_s(netns: str, address: str, samples: int = 20) -> float:
    """Median time for a line to come back through `cat` over SSH: an application-level RTT."""
    import json

    out = in_netns(netns, _ECHO, json.dumps(ssh_argv(address, "cat")), str(samples))
    return statistics.median(json.loads(out))


def stream_throughput_bps(netns: str, address: str, n_bytes: int, rtt_s: float) -> float:
    """Bits per second of one SSH stream of n_bytes; the final acknowledgement's half RTT and
    the first byte's half RTT are taken out of the elapsed time."""
    import json

    argv = ssh_argv(address, f"echo ready; head -c {n_bytes} >/dev/null; echo done")
    elapsed = float(in_netns(netns, _STREAM, json.dumps(argv), str(n_bytes)))
    return n_bytes * 8 / (elapsed - rtt_s)
