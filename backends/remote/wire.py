"""What the node scripts agree on with each other and with whimbrel (standard library only,
Python 3.9): the streams the source (source.py) writes and the target (receiver.py) reads, and
the failpoints the engine arms (backends/failpoints.py).

A striped stream is dealt in frames, LENGTH then that many bytes (at most BLOCK from the
source, FRAME_LIMIT accepted), a zero LENGTH ending the stream, frame i on stripe i % K (see
receiver.py). A round's stream inside it is a run of files, each LENGTH, a JSON header naming
it, then ops up to OP_END, and a zero LENGTH after the last:
    OP_DATA       SIZE, then that many bytes
    OP_COPY_PREV  NAME_LEN, a file name, SPAN (offset, length): bytes the target holds from
                  the previous round
    OP_COPY_CUR   the same, from a file of this round
A file tree ("@layer", "@volume:NAME") is a tar in OP_DATA ops. A round's first file may be
AHEAD: changed pages sent while the dump still ran, in OP_DATA ops only, which the page files
that follow take by OP_COPY_CUR (also when patched in place); the target drops it once the
round is in.
"""

import json
import os
import signal
import struct
import time

PAGE = 4096
CHUNK = 256 * PAGE  # a dump's page files are compared in chunks of this as they land
BLOCK = 1 << 20  # a striped stream's frame, as the source deals it
FRAME_LIMIT = 1 << 24  # the largest frame a receiver takes

OP_DATA, OP_COPY_PREV, OP_COPY_CUR, OP_END = b"D", b"P", b"C", b"E"
AHEAD = "ahead"  # the file of the pages sent ahead (above)
LENGTH = struct.Struct(">I")
SIZE = struct.Struct(">Q")
NAME_LEN = struct.Struct(">H")
SPAN = struct.Struct(">QQ")


def file_header(**fields):
    """A file's start in a round's stream: LENGTH, then its JSON header."""
    header = json.dumps(fields).encode()
    return LENGTH.pack(len(header)) + header


def failpoint(spec, name):
    """A failure armed by whimbrel's own tests (WHIMBREL_FAILPOINTS, carried in the script's
    `failpoints`; inert otherwise): see backends/failpoints.py for the names and actions."""
    action = spec.get("failpoints", {}).get(name)
    if action is None:
        return
    if action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise RuntimeError(f"failpoint {name}")
