"""whimbrel node helper: this node's containers, each time it is asked (standard library only).

  inventory DOCKER_SOCKET    for every line read on stdin, one JSON line: {"containers":
                             [{"summary": ..., "inspect": ..., "memory": N}],
                             "memory_available": N}; it ends at the end of stdin

The Docker Engine API asked locally (one list, one inspect per container, over the Unix
socket), and each running container's memory read from its cgroup (what `docker stats` shows:
usage less the page cache that can be dropped; cgroup v1 or v2, cgroupfs or systemd driver,
found through /proc/PID/cgroup). `whimbrel ls` asks once; the console keeps one running per
node and asks it at every refresh: asking the engine through the SSH connection costs a channel
per request, a stats call costs the engine about a second, and a helper started per refresh
costs a process on the node and a channel on the operator's side each time.
The node's own MemAvailable comes along: where an evacuation may place containers.
"""

import http.client
import json
import os
import sys

from engineapi import UnixConnection, get

KEEP = ("State", "HostConfig", "Mounts", "Config")


def _cgroup_dir(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "/sys/fs/cgroup/memory" + path
    for line in lines:
        if line.startswith("0::"):
            return "/sys/fs/cgroup" + line[3:]
    return None


def _stat(directory):
    stats = {}
    with open(os.path.join(directory, "memory.stat")) as f:
        for line in f:
            key, value = line.split()
            stats[key] = int(value)
    return stats


def memory(pid):
    try:
        directory = _cgroup_dir(pid)
        if directory is None:
            return None
        if os.path.exists(os.path.join(directory, "memory.current")):  # v2
            with open(os.path.join(directory, "memory.current")) as f:
                usage = int(f.read())
            inactive = _stat(directory).get("inactive_file", 0)
        else:  # v1
            with open(os.path.join(directory, "memory.usage_in_bytes")) as f:
                usage = int(f.read())
            inactive = _stat(directory).get("total_inactive_file", 0)
    except (OSError, ValueError):
        return None
    return max(0, usage - inactive)


def memory_available():
    """/proc/meminfo's MemAvailable in bytes (the kernel's estimate of what new work can get
    without swapping), or None where it is not given."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def containers(sock):
    conn = UnixConnection(sock)
    try:
        status, summaries = get(conn, "/containers/json?all=1")
        if status != 200:
            return {"error": f"docker: HTTP {status}"}
        out = []
        for summary in summaries:
            status, inspect = get(conn, "/containers/" + summary["Id"] + "/json")
            # A container removed meanwhile is shown as listed.
            inspect = {k: inspect.get(k) for k in KEEP} if status == 200 else None
            pid = ((inspect or {}).get("State") or {}).get("Pid")
            memory_now = memory(pid) if pid else None
            out.append({"summary": summary, "inspect": inspect, "memory": memory_now})
    finally:
        conn.close()
    return {"containers": out, "memory_available": memory_available()}


def main(sock):
    for _ in sys.stdin:
        try:
            answer = containers(sock)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # The engine restarting or gone: said, and the next ask tries again.
            answer = {"error": f"docker: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
