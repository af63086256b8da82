"""`lab down` leaves nothing behind, and `lab up` starts fresh even over a killed lab.

This module takes the lab down and brings it back up, so it leaves a running lab for whatever
runs after it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from whimbrel.backends.lab import lab as lab_module
from whimbrel.backends.lab.criu_cache import KDAT, _on_tmpfs
from whimbrel.backends.lab.topology import LAB_DIR, LINK_PREFIX, NETNS_PREFIX, RUN_DIR

pytestmark = pytest.mark.lab


def _whimbrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _running_lab_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if str(LAB_DIR) in cmd or str(RUN_DIR) in cmd or "whimbrel.backends.lab.wan" in cmd:
            found.append(f"{entry.name} {cmd[:80]}")
    return found


def _leftovers() -> dict[str, list[str]]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {
        "namespaces": [line for line in netns.splitlines() if line.startswith(NETNS_PREFIX)],
        "links": [
            line.split(":")[1].strip()
            for line in links.splitlines()
            if line.split(":")[1].strip().startswith(LINK_PREFIX)
        ],
        "mounts": lab_module.lab_mounts(),
        "processes": _running_lab_processes(),
        "files": [str(p) for p in (LAB_DIR, RUN_DIR) if p.exists()]
        # CRIU's record of the kernel, which the lab keeps where CRIU cannot (not a tmpfs).
        + ([str(KDAT)] if KDAT.exists() and not _on_tmpfs(KDAT.parent) else []),
    }


def test_every_criu_run_reads_the_record_of_the_kernel_instead_of_probing_it(
    lab: dict, tmp_path: Path
) -> None:
    log = tmp_path / "check.log"
    subprocess.run(["criu", "check", "-v4", "-o", str(log)], capture_output=True, timeout=60)
    said = log.read_text()
    assert "Loaded kdat cache from /run/criu.kdat" in said, said[:2000]


def test_down_removes_everything_and_is_safe_twice_then_up_over_a_killed_lab(lab: dict) -> None:
    # A lab whose processes were all killed (as after a crash) is cleaned up by `lab up`.
    pids = [int(p) for p in _running_lab_processes() for p in [p.split()[0]]]
    subprocess.run(["kill", "-9", *map(str, pids)], check=False)

    started = time.monotonic()
    up = _whimbrel("lab", "up", "--json")
    took = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    print(f"lab up over a killed lab: {took:.1f} s")
    assert took < 90

    for _ in range(2):
        down = _whimbrel("lab", "down")
        assert down.returncode == 0, down.stderr
        assert _leftovers() == {
            "namespaces": [],
            "links": [],
            "mounts": [],
            "processes": [],
            "files": [],
        }

    up = _whimbrel(
        "lab", "up", "--rtt", f"{lab['rtt_ms']}ms", "--bandwidth", f"{lab['bandwidth_mbit']}Mbit"
    )
    assert up.returncode == 0, up.stderr
    assert all(n["reachable"] for n in lab_module.status()["nodes"])
