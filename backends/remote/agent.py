"""The migration's agent on the source (standard library only): the pre-copy rounds on the
engine's word, over sessions kept open from round to round, and the hand-over daemon armed
beside them (handover.py).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from handover import arm_handover, fire_handover
from nodelib import fail, out
from pagestream import file_trees, load_index, send_images
from progress import Ticker
from runcdump import dump
from transfer import Transfer, answered
from workdirs import prepared_info, workdir


def agent(mig, cid, link_json, cfg_json):
    """The migration's agent on the source, on the engine's word, a line at a time: "round N"
    runs pre-copy round N, "handover" fires the hand-over; a JSON line answers each (a round's
    progress lines, progress.py, come before its answer).

    The rounds' sessions open once, while round 0 dumps, and stay open: a later round costs
    its dump, its data and one round trip for the answer. The hand-over runs in a daemon of
    its own, armed once round 0's sessions are ready (at "handover" when no round comes): it
    opens the final round's sessions behind round 0's data and waits, armed, while the rounds
    run, so nothing is left to open between the last round and the freeze. (Armed beside round
    0's sessions, its own start delayed round 0's by 1.3 s at 200 ms.) Fired, it goes on
    without us; if we end without firing it (EOF: the engine gave up, or is gone), it stands
    down."""
    wd = workdir(mig)
    links = json.loads(link_json)
    prepared = prepared_info(wd)
    cfg = json.loads(cfg_json)
    armed = []  # the pipe that fires the hand-over, once armed

    def arm():
        if not armed:
            armed.append(arm_handover(mig, cid, wd, links, cfg))

    transfer, fired = None, False
    try:
        for line in sys.stdin:
            words = line.split()
            if words == ["handover"] and not fired:
                arm()
                fire_handover(armed[0])
                fired = True
                out({"fired": True})
            elif len(words) == 2 and words[0] == "round" and not fired:
                if transfer is None:  # stop-and-copy has no rounds: no sessions for them
                    transfer = Transfer(links, "rounds")
                out(_round(mig, cid, wd, prepared, transfer, int(words[1]), arm))
            else:
                raise ValueError(f"agent: unexpected {line.strip()[:80]!r}")
        if armed and not fired:
            os.close(armed[0])  # the armed daemon stands down now, not once these sessions end
        error = transfer.close() if transfer is not None else None
        if error and not fired:  # once fired, how the rounds' sessions end is no matter
            raise RuntimeError("target: " + error)
        if transfer is not None and not fired:
            answered(transfer.session)
    except (RuntimeError, OSError, ValueError) as exc:
        if transfer is not None:
            transfer.close(timeout=10)
        fail(str(exc))


def _round(mig, cid, wd, prepared, transfer, number, arm):
    # File trees go with round 0, and again whole with the final round.
    trees = file_trees(prepared) if number == 0 else ()
    on_target = load_index(wd)
    # Its page files are compared with the held ones as they land (as the final round's are).
    img, dump_s, landed = dump(mig, cid, True, f"round-{number}", on_target)
    t0 = time.monotonic()
    transfer.ready()
    sessions_s = time.monotonic() - t0
    arm()
    # Progress lines from here to the answer (not before: arm() forks the hand-over daemon,
    # and a fork takes no other thread along, nor the output lock one may hold). The count is
    # this round's, whatever the stream carried before.
    before = transfer.stream.written
    with Ticker(number, lambda: transfer.stream.written - before):
        (state, sent, _diff_s), _reply = transfer.send(
            lambda stream: _faulty(
                prepared,
                f"kill-link-round-{number}",
                lambda s: send_images(img, wd, s, on_target, trees, landed),
                stream,
            )
        )
    send_s = time.monotonic() - t0
    shutil.rmtree(img, ignore_errors=True)
    shutil.rmtree(img + ".work", ignore_errors=True)
    return {
        "dump_s": dump_s,
        "freeze_s": dump_s,
        "send_s": send_s,
        "sessions_s": sessions_s,
        "state_bytes": state,
        "sent_bytes": sent,
        "stripes": len(transfer.stripes) + 1,
    }


def _faulty(prepared, fault, feed, stream):
    """The failpoint that cuts the rounds' link halfway through a round's stream."""
    if fault not in prepared.get("failpoints", {}):
        return feed(stream)

    class Cut:
        def __init__(self):
            self.n = 0

        def write(self, data):
            self.n += len(data)
            if self.n > 256 * 1024:
                subprocess.run(["pkill", "-KILL", "-f", "^ssh .* rounds "], capture_output=True)
                raise BrokenPipeError("link cut (injected)")
            stream.write(data)

        def flush(self):
            stream.flush()

    return feed(Cut())
