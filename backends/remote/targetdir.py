"""The receiver's own dir on the target and what the operator put there (standard library
only): target.json names the migration, the target container, its Docker socket, upper dir and
checkpoint dir, so the source cannot choose where anything is written.
"""

import json
import os

from nodelib import docker

CHECKPOINT = "whimbrel"
RESTORED = "restored.json"


def here():
    """The link's private dir, where the operator put this script and target.json."""
    return os.path.dirname(os.path.abspath(__file__))


def read_target():
    with open(os.path.join(here(), "target.json")) as f:
        return json.load(f)


def keep_restored(answer):
    """The restore's answer, kept beside target.json: a source whose copy of it was lost
    learns it from `settle` (its link's, below)."""
    with open(os.path.join(here(), RESTORED), "w") as f:
        json.dump(answer, f)


def read_restored():
    try:
        with open(os.path.join(here(), RESTORED)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def target_docker(*args, sock=None):
    """Docker on the target's socket (target.json's, unless `sock` names one)."""
    return docker(sock or read_target()["docker_socket"], *args, timeout=300)
