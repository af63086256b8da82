"""The receiver's own dir on the target and what the operator put there (standard library
only): target.json names the migration, the target container, its Docker socket, upper dir and
checkpoint dir, so the source cannot choose where anything is written.
"""

import json
import os

from nodelib import docker

CHECKPOINT = "whimbrel"


def here():
    """The link's private dir, where the operator put this script and target.json."""
    return os.path.dirname(os.path.abspath(__file__))


def read_target():
    with open(os.path.join(here(), "target.json")) as f:
        return json.load(f)


def target_docker(*args, sock=None):
    """Docker on the target's socket (target.json's, unless `sock` names one)."""
    return docker(sock or read_target()["docker_socket"], *args, timeout=300)
