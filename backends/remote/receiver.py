"""whimbrel node helper: the receiving end of a node-to-node link (standard library only).

It is the forced command of the ephemeral key that whimbrel installs on the TARGET node for one
migration or probe, so the source node can run this and nothing else. What the source asked
for arrives in SSH_ORIGINAL_COMMAND and is parsed here, never handed to a shell. The operator
writes target.json beside this script (the migration, the target container, its Docker socket,
upper dir and checkpoint dir): the source cannot choose where anything is written.

The commit point: DECISIONS/MIG/decision, one record on this node, written once (temp, fsync,
link: the first verdict stands) and read by everyone who acts: this receiver, the source's
hand-over daemon (through `settle`) and the operator's recovery (running this script as
`python3 - ACTION ARGS` over its own SSH session). Before a "committed" record the restored
copy is fenced: CRIU leaves its tasks stopped, so no client is ever answered by a copy that
may yet be undone; the record written, it is resumed and never undone.

  sink K T      read a striped stream (below) to its end; answer {"bytes": N, "elapsed_s": S}
  rounds K T    the pre-copy rounds' CRIU images (see wire.py for the stream), one striped
                stream per round over the same sessions, round N into /.wb/round-N/ (below),
                each answered {"round": N, ...}; the session ends when the source ends it
  recv final K T
                opened before the final round is due (the source stands down by closing it
                unused), the final round's images (and the writable layer, into the upper
                dir), where `docker start --checkpoint` restores from, with the page files
                staged inside the target container's own root file system (/.wb), which
                makes the restore 5x faster; then, in the same session:
                `docker start --checkpoint`, fenced (below), answer, then wait up to
                COMMIT_WAIT_S for the source's "commit" line (sent right behind the stream,
                it is there by then) and record the verdict: committed, the staged files go
                and the copy serves; anything else, a lost source or silence, records
                "aborted" and the copy goes. A receive or restore that fails records
                "aborted" and answers with it: the source may have sent its commit
  load-image    `docker load` what comes on stdin (the source's `docker save`)
  settle        record "aborted" unless a verdict stands; then act on the verdict that stands:
                aborted, the target container goes; committed, it is made to serve (both
                idempotent); answer {"decision": ...}. The source's way to learn the outcome
                when the final round's session was lost
  stripe T I    stripe I (1..K-1) of the striped stream T: this session's stdin, relayed into
                the socket of the session (sink, rounds or recv) that reassembles the stream

Striped streams: one SSH channel moves at most its window (about 2 MB) per round trip, so the
source deals the stream in frames (4-byte length, then that many bytes; a zero length ends the
stream) round-robin over K sessions, each on its own connection: frame i travels on stripe
i % K, stripe 0 being the receiving session's own stdin. T names the stream, so a stripe can
never join another stream's session.

Run by the operator (argv instead of SSH_ORIGINAL_COMMAND):
  expect MIG              a migration is coming: its decision dir made
  settle MIG SOCK CID     as above, for container CID on the Docker socket SOCK
  forget MIG              drop the decision dir once every party has acted on it

Where each part lives: decision.py (the commit point), stripes.py (striped streams joined),
receiving.py (the rounds), confined.py (writes that never follow a link, the tar extract),
restoring.py (the fenced restore), targetdir.py (this dir and target.json), wire.py (the
stream's format), nodelib.py (what every script shares).
"""

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile

from decision import expect, forget, settle
from nodelib import LINK_ARG, fail, out
from receiving import recv, rounds
from stripes import sink, stripe
from targetdir import here, read_target


def load_image():
    """`docker load` of the image the operator named, and of nothing else: the archive is kept
    aside and loaded only if its manifest holds that one image (by ID) under no other name
    than the operator's (a hostile source could otherwise retag any image on this node)."""
    target = read_target()
    image = target["image"]
    spool = os.path.join(here(), "image.tar")
    try:
        with open(spool, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        check_image_archive(spool, image["id"], image["ref"])
        proc = subprocess.run(
            ["docker", "-H", "unix://" + target["docker_socket"], "load", "-i", spool],
            capture_output=True,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool)
    if proc.returncode != 0:
        fail("docker load: " + proc.stderr.decode(errors="replace")[-300:])
    out({"loaded": proc.stdout.decode(errors="replace").strip()})


def check_image_archive(path, image_id, ref):
    """Refuse a `docker save` archive that holds anything but image `image_id` named `ref`."""
    names = {ref} if ":" in ref.rsplit("/", 1)[-1] else {ref, ref + ":latest"}
    want = image_id.split(":", 1)[-1]
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        try:
            legacy = json.load(archive.extractfile("repositories"))
        except KeyError:
            legacy = {}
    if not isinstance(manifest, list) or len(manifest) != 1:
        raise ValueError("image archive: not exactly one image")
    config = str(manifest[0].get("Config", ""))
    if config.split("/")[-1].rsplit(".", 1)[0] != want:
        raise ValueError(f"image archive: image {config[:80]!r} is not the one named ({want})")
    tags = set(manifest[0].get("RepoTags") or ())
    tags |= {f"{repo}:{tag}" for repo, tags_ in legacy.items() for tag in tags_}
    if not tags <= names:
        raise ValueError(f"image archive: names {sorted(tags - names)[:3]} were not asked for")


# What the source may ask for over the link.
ACTIONS = {
    "sink": sink,
    "rounds": rounds,
    "recv": recv,
    "settle": lambda: settle(),
    "load-image": load_image,
    "stripe": stripe,
}


# What the operator runs over its own session (`python3 - ACTION ARGS`).
OPERATOR_ACTIONS = {"expect": expect, "settle": settle, "forget": forget}


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if sys.argv[1:2] == [LINK_ARG]:  # through sudo: see LINK_ARG
        words, actions = shlex.split(" ".join(sys.argv[2:3])), ACTIONS
    elif len(sys.argv) > 1:  # the operator's own session: the forced command has no arguments
        words, actions = sys.argv[1:], OPERATOR_ACTIONS
    else:
        words, actions = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", "")), ACTIONS
    if not words or words[0] not in actions:
        fail("refused {!r} (allowed: {})".format(words[:1], ", ".join(actions)))
    try:
        actions[words[0]](*words[1:])
    except (OSError, ValueError, EOFError, RuntimeError, TypeError) as exc:
        fail(f"{words[0]}: {exc}")


if __name__ == "__main__":
    main()
