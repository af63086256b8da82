"""whimbrel node helper: the receiving end of a node-to-node channel (standard library only).

It is the forced command of the ephemeral key that whimbrel installs on the receiving node for
one migration or probe, so the sending node can run this and nothing else. What the sender
asked for arrives in SSH_ORIGINAL_COMMAND and is parsed here, never handed to a shell.

  sink    read stdin to its end; answer {"bytes": N, "elapsed_s": S}
"""

import json
import os
import shlex
import sys
import time


def sink():
    print("ready", flush=True)
    stdin = sys.stdin.buffer
    total = 0
    t0 = None
    while True:
        chunk = stdin.read1(1 << 20)
        if not chunk:
            break
        if t0 is None:
            t0 = time.perf_counter()
        total += len(chunk)
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    print(json.dumps({"bytes": total, "elapsed_s": elapsed}), flush=True)


ACTIONS = {"sink": sink}


def main():
    words = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if not words or words[0] not in ACTIONS:
        sys.exit("receiver: refused {!r} (allowed: {})".format(words[:1], ", ".join(ACTIONS)))
    ACTIONS[words[0]](*words[1:])


if __name__ == "__main__":
    main()
