"""whimbrel node helper: is this node ready to migrate containers? (standard library only)

  doctor DOCKER_SOCKET AUTHORIZED_KEYS PEERS_JSON
      one JSON line: {"checks": [{"name", "ok", "required", "detail", "remedy"}, ...]}
      PEERS_JSON: [[NAME, HOST, PORT], ...], the nodes this one would send rounds to

Each check says what it found (`detail`) and, when it fails, what to do in one line
(`remedy`). A required check that fails makes the node unfit for migrations; the others say
what the node does without (a full dump each round, a restore that is not lazy).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

from engineapi import UnixConnection, get
from nodelib import expand_home, login_user
from runcdump import find_runc_root
from workdirs import BASE

CRIU_AT_LEAST = (4, 2)
# The engines migrations are tested on: the lab's, and Debian forky's
# (tests/lab/test_second_engine.py).
TESTED_DOCKER = ("20.10", "28.5")
MIN_FREE_BYTES = 1 << 30
LINK_TIMEOUT_S = 5.0


def check(name, ok, detail, remedy=None, required=True):
    return {
        "name": name,
        "ok": bool(ok),
        "required": required,
        "detail": detail,
        "remedy": None if ok else remedy,
    }


def run(argv, timeout=30):
    """(exit code, what it printed), or (None, why it did not run)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def privileges():
    uid = os.geteuid()
    login = login_user()
    if uid == 0:
        found = "root" if login is None else f"uid {login[0]}, root through sudo -n"
    else:
        found = f"runs as uid {uid}"
    return check(
        "privileges",
        uid == 0,
        found,
        'connect as root, or set become = "sudo" for a user with passwordless sudo: '
        "checkpoint, restore and the container's files need root",
    )


def engine(sock):
    """The engine's checks, and what it answered ({"version", "info", "running"}: its
    /version, /info and running containers' ids), or None when it did not."""
    try:
        conn = UnixConnection(sock)
        _, version = get(conn, "/version")
        _, info = get(conn, "/info")
        _, running = get(conn, "/containers/json")
    except (OSError, ValueError) as exc:
        found = check(
            "docker",
            False,
            f"no engine answers on {sock}: {exc}",
            "start dockerd, or set this node's docker_socket to the socket it listens on",
        )
        return [found], None
    number = version.get("Version", "?")
    checks = [
        check("docker", True, f"Docker {number} (API {version.get('ApiVersion', '?')})"),
        check(
            "docker-version",
            any(number.startswith(t + ".") for t in TESTED_DOCKER),
            f"Docker {number}; migrations are tested on {', '.join(TESTED_DOCKER)}",
            "it may work: try a migration of a container that matters little first",
            required=False,
        ),
        check(
            "experimental",
            info.get("ExperimentalBuild") is True,
            "on" if info.get("ExperimentalBuild") else "off",
            'add "experimental": true to /etc/docker/daemon.json and restart dockerd '
            "(restores use docker start --checkpoint)",
        ),
    ]
    return checks, {"version": version, "info": info, "running": [c["Id"] for c in running]}


def docker_cli():
    found = shutil.which("docker")
    return check(
        "docker-cli",
        found,
        found or "no docker on PATH",
        "install the docker CLI (docker.io or docker-ce-cli): node helpers run it",
    )


def runc(answers):
    info = answers["info"]
    runtime = info.get("DefaultRuntime", "?")
    if runtime != "runc":
        return check(
            "runc",
            False,
            f"the default runtime is {runtime}",
            'set "default-runtime": "runc" in /etc/docker/daemon.json: dumps go through runc',
        )
    # The engine names the runc it runs (found on its own PATH, which may not be ours).
    parts = answers["version"].get("Components") or ()
    version = next((p.get("Version") for p in parts if p.get("Name") == "runc"), None)
    # Its root (where dumps find a container's state) is the one holding a running one's.
    roots = (find_runc_root(cid) for cid in answers["running"])
    root = next((r for r in roots if r), None)
    where = f"its state in {root}" if root else "no running container to find its state by"
    return check(
        "runc",
        version is not None,
        f"runc version {version}; {where}" if version else "the engine names no runc",
        "install runc where dockerd finds it (Docker 19.03 or newer names it)",
    )


def criu():
    """CRIU on PATH, new enough, and `criu check` content; the feature checks follow."""
    path = shutil.which("criu")
    if path is None:
        found = check(
            "criu",
            False,
            "no criu on PATH",
            "install CRIU 4.2 or newer on PATH (Debian forky and sid carry 4.2.1)",
        )
        return [found], None
    code, said = run([path, "--version"])
    match = re.search(r"Version:\s*(\d+)\.(\d+)(?:\.(\d+))?", said)
    version = tuple(int(part or 0) for part in match.groups()) if match else None
    wanted = ".".join(map(str, CRIU_AT_LEAST))
    shown = ".".join(map(str, version)) if version else f"unknown ({last_line(said)})"
    checks = [
        check(
            "criu",
            version is not None and version[:2] >= CRIU_AT_LEAST,
            f"CRIU {shown} at {path}",
            f"install CRIU {wanted} or newer (older ones cannot dump TCP sockets on new kernels)",
        )
    ]
    code, said = run([path, "check"])
    checks.append(
        check(
            "criu-check",
            code == 0,
            last_line(said),
            f"`{path} check` fails: the kernel lacks what CRIU needs (see its output there)",
        )
    )
    return checks, path


def criu_features(path):
    code, said = run([path, "check", "--feature", "uffd-noncoop"])
    lazy = check(
        "lazy-pages",
        code == 0,
        "userfaultfd: restores start before all pages are there"
        if code == 0
        else f"no userfaultfd ({last_line(said)})",
        "a kernel with CONFIG_USERFAULTFD: without it every page is sent before the restore",
        required=False,
    )
    code, said = run([path, "check", "--feature", "mem_dirty_track"])
    dirty = check(
        "soft-dirty",
        code == 0,
        "soft-dirty: rounds dump only the pages written since"
        if code == 0
        else "no soft-dirty tracking: each round dumps all memory (changes found by hashing)",
        "a kernel with CONFIG_MEM_SOFT_DIRTY makes rounds cheaper",
        required=False,
    )
    recorded = _on_tmpfs("/run") or os.path.exists(KDAT)
    kept = check(
        "criu-record",
        recorded,
        f"CRIU keeps its record of the kernel ({KDAT})"
        if recorded
        else "/run is not a tmpfs: CRIU keeps no record of the kernel and probes it again at "
        "every run (~40 ms more in each dump and restore)",
        "mount a tmpfs on /run, as systemd does",
        required=False,
    )
    lock = shutil.which("iptables-restore")
    network = check(
        "network-lock",
        lock,
        f"iptables ({lock})" if lock else "no iptables-restore on PATH",
        "install iptables: CRIU locks the container's connections with it while it dumps",
    )
    return [lazy, dirty, kept, network]


# CRIU's record of what the kernel supports, which it keeps only on a tmpfs (gone at reboot).
KDAT = "/run/criu.kdat"


def _on_tmpfs(path):
    code, said = run(["stat", "-f", "-c", "%T", path])
    return code == 0 and said == "tmpfs"


def cgroups(info):
    """The cgroup version and driver the engine runs containers under (both are supported:
    the inventory reads memory either way)."""
    version = info.get("CgroupVersion")
    return check(
        "cgroup",
        version in ("1", "2"),
        f"cgroup v{version}, {info.get('CgroupDriver', '?')} driver"
        if version
        else "the engine does not say its cgroup version",
        "a Docker engine of 20.10 or newer, on cgroup v1 or v2",
    )


def mount_of(path, mountinfo="/proc/self/mountinfo"):
    """(mount point, its optional fields: "shared:N", "master:N", ...) of the mount `path`
    is on; the last of several on one point is the one on top."""
    found = ("/", [])
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(found[0]):
                found = (point, fields[6 : fields.index("-")])
    return found


def mount_propagation(info):
    """Whether the engine's data root is on a shared (or slave) mount, as systemd makes / at
    boot: on a private one the containers' root mounts are private, and CRIU cannot restore
    there a container dumped where they were shared (mount-v2 cannot copy the sharing: the
    Docker 28 engine of the lab on this machine's private /, from a 20.10 node)."""
    root = (info or {}).get("DockerRootDir") or "/var/lib/docker"
    point, tags = mount_of(root)
    shared = any(t.startswith(("shared:", "master:")) for t in tags)
    return check(
        "mount-propagation",
        shared,
        f"{root} is on {'a shared' if shared else 'a private'} mount ({point})",
        "mount --make-rshared / (systemd does at boot): restores into private root mounts "
        "fail for containers dumped where theirs were shared",
        required=False,
    )


def free_space(where, info):
    docker_root = (info or {}).get("DockerRootDir") or "/var/lib/docker"
    checks = []
    for label, path in (("staging", where), ("docker root", docker_root)):
        probe = path
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        st = os.statvfs(probe)
        free = st.f_bavail * st.f_frsize
        # A warning: what is enough depends on the container (a full disk mid-migration
        # fails it cleanly, the source running on).
        checks.append(
            check(
                "space:" + label,
                free >= MIN_FREE_BYTES,
                f"{free / (1 << 30):.1f} GiB free for {path}",
                f"free space on the file system of {path}: rounds are staged there, "
                "twice the container's memory on a source (a round's dump and the last "
                "round's, which it is compared with), once on a target",
                required=False,
            )
        )
    return checks


def writable(path):
    """Whether a key could be added: the file opens for appending (which root's access()
    would not tell of an immutable file or a read-only mount), or its directory takes it."""
    if not os.path.exists(path):
        parent = os.path.dirname(path)
        return os.path.isdir(parent) and os.access(parent, os.W_OK)
    try:
        with open(path, "a"):
            return os.path.isfile(path)
    except OSError:
        return False


def authorized_keys(path):
    path = expand_home(path)
    ok = writable(path)
    return check(
        "authorized-keys",
        ok,
        f"{path} {'writable' if ok else 'not writable'}",
        "make it writable by this user, or set the node's authorized_keys to the file its "
        "sshd reads: a migration to this node trusts a short-lived key there",
    )


def link(name, host, port):
    """A node this one sends rounds to: its sshd answers over TCP."""
    try:
        with socket.create_connection((host, port), timeout=LINK_TIMEOUT_S) as sock:
            sock.settimeout(LINK_TIMEOUT_S)
            banner = sock.recv(256)
        ok = banner.startswith(b"SSH-")
        detail = f"{host}:{port} answers" if ok else f"{host}:{port} is not an SSH server"
    except OSError as exc:
        ok, detail = False, f"{host}:{port}: {exc}"
    return check(
        "link:" + name,
        ok,
        detail,
        f"let this node reach {host}:{port} over TCP: rounds go node to node over SSH",
    )


def main(sock, keys, peers_json):
    checks = [privileges(), docker_cli()]
    engine_checks, answers = engine(sock)
    checks += engine_checks
    info = answers["info"] if answers else None
    if answers is not None:
        checks += [runc(answers), cgroups(info), mount_propagation(info)]
    criu_checks, criu_path = criu()
    checks += criu_checks
    if criu_path is not None:
        checks += criu_features(criu_path)
    checks += [*free_space(BASE, info), authorized_keys(keys)]
    checks += [link(name, host, int(port)) for name, host, port in json.loads(peers_json)]
    print(json.dumps({"checks": checks}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
