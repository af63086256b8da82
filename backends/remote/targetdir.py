"""The receiver's own dir on the target and what the operator put there (standard library
only): target.json names the migration, the target container, its Docker socket, upper dir and
checkpoint dir, so the source cannot choose where anything is written.
"""

import json
import os
import subprocess

CHECKPOINT = "whimbrel"


def here():
    """The link's private dir, where the operator put this script and target.json."""
    return os.path.dirname(os.path.abspath(__file__))


def target():
    with open(os.path.join(here(), "target.json")) as f:
        return json.load(f)


def docker(*args, sock=None):
    proc = subprocess.run(
        ["docker", "-H", "unix://" + (sock or target()["docker_socket"]), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()
