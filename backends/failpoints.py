"""Named failpoints: faults whimbrel's own tests inject into a real migration (as etcd's gofail
does), inert unless armed.

A test arms them in the environment of the whimbrel process it runs:
    WHIMBREL_FAILPOINTS="handover.after-pause=kill,receiver.after-commit=sleep:3"
The engine checks every name against FAILPOINTS (a typo is an error, never a silently passing
test) and hands them to the node scripts, which act where the name says (backends/remote/wire.py
`failpoint`, which reads the actions below):
    error      the step fails there (the default)
    kill       the process running the step is SIGKILLed there
    sleep:S    it waits S seconds there (a test injects a partition meanwhile)
A few name a fault of their own instead of a place (cutting a link, corrupting an image).
"""

from __future__ import annotations

import os
import re

from whimbrel.backends.errors import UsageError

ENV = "WHIMBREL_FAILPOINTS"

FAILPOINTS: dict[str, str] = {
    "link.short-ttl": "engine: the link's key expires by itself within a minute, not two hours",
    "kill-link-round-N": "source: round N's link killed halfway through its stream",
    "corrupt-image": "target: the final round's inventory.img garbled before the restore",
    "drop-final-link": "source: the final round's session killed after its stream",
    "criu.dump-round": "source: a pre-copy round's CRIU dump fails (its page server is absent)",
    "criu.dump-final": "source daemon: the final CRIU dump fails (its page server is absent)",
    "handover.before-pause": "source daemon: fired, before `docker pause`",
    "handover.after-pause": "source daemon: the container paused, before the dump",
    "handover.after-dump": "source daemon: dumped, before the send",
    "handover.after-send": "source daemon: the final round's stream sent, before the commit",
    "handover.after-restore": "source daemon: the commit sent, the target's restore answered",
    "handover.remove-source": "source daemon: each try at removing the committed source",
    "receiver.before-restore": "target: runc.conf edited for the restore, before `docker start`",
    "receiver.before-commit-record": "target: the commit word read (or not), before recording",
    "receiver.after-commit": "target: committed and serving, before answering the source",
}
ACTIONS = re.compile(r"^(error|kill|sleep:\d+(\.\d+)?)$")


def _known(name: str) -> bool:
    return name in FAILPOINTS or re.fullmatch(r"kill-link-round-\d+", name) is not None


def parse(text: str) -> dict[str, str]:
    """`name[=action],...` as a {name: action} map; unknown names and actions refused."""
    armed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, action = item.partition("=")
        action = action or "error"
        if not _known(name):
            raise UsageError(f"{ENV}: no failpoint {name!r} (known: {', '.join(FAILPOINTS)})")
        if not ACTIONS.match(action):
            raise UsageError(f"{ENV}: {name}: action {action!r} is not error, kill or sleep:S")
        armed[name] = action
    return armed


def armed() -> dict[str, str]:
    """The failpoints this process's environment arms (none in normal use)."""
    return parse(os.environ.get(ENV, ""))
