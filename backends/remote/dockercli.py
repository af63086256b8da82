"""The Docker CLI on the node's own socket (standard library only)."""

import subprocess


def docker(sock, *args):
    proc = subprocess.run(
        ["docker", "-H", "unix://" + sock, *args], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()
