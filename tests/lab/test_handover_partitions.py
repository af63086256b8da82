"""Partitions between the clusters during the hand-over: the WAN relay killed (every connection
between the nodes drops, none can be made; the operator still reaches both nodes), healing 20 s
later or not within the migration.

Two client ledgers in each: one follows the container (east-1, then west-1), the other talks
only to the target node, as a client of a re-pointed DNS name would. After each: the container
serves on exactly one node, with every write either copy acknowledged; nothing of the
migration is left on either node.

Each partition lands where a named failpoint holds the hand-over for 3 s (see
backends/failpoints.py); a watcher cuts the WAN when the step before it is on record."""

from __future__ import annotations

import glob
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.lab.migration_tools import Ledgers, daemon_logged, finished, migrate_process, reached
from whimbrel.backends.lab import lab as lab_module
from whimbrel.backends.lab.topology import build_topology

pytestmark = pytest.mark.lab
HEAL_AFTER_S = 20.0


class Wan:
    """Cuts the WAN once `on_record()` holds, heals it HEAL_AFTER_S later (if asked to), and
    always by the test's end."""

    def __init__(self) -> None:
        self.cut_at: float | None = None
        self.healed = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def cut_when(self, on_record: Callable[[], bool], heal: bool) -> None:
        def watch() -> None:
            while not self._stop.is_set() and not on_record():
                time.sleep(0.01)
            if self._stop.is_set():
                return
            lab_module.cut_wan()
            self.cut_at = time.monotonic()
            if heal and not self._stop.wait(HEAL_AFTER_S):
                self.heal()

        self._threads.append(threading.Thread(target=watch, daemon=True))
        self._threads[-1].start()

    def heal(self) -> None:
        if self.cut_at is not None and not self.healed.is_set():
            lab_module.heal_wan()
            self.healed.set()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HEAL_AFTER_S + 30)
        self.heal()


@pytest.fixture
def wan(lab: dict) -> Iterator[Wan]:
    wan = Wan()
    yield wan
    wan.close()


def target_committed() -> bool:
    for path in glob.glob("/var/lib/whimbrel/decisions/*/decision"):
        try:
            with open(path) as f:
                if json.load(f)["decision"] == "committed":
                    return True
        except (OSError, ValueError):
            continue
    return False


def target_restoring() -> bool:
    """Has the target begun its restore (so the whole final round reached it)? Its link's dir
    is in west-1's temp dir, which the host sees."""
    tmp = build_topology().node("west-1").tmp_dir
    return bool(glob.glob(f"{tmp}/whimbrel-*/restore/work/restore.begun"))


@dataclass
class Run:
    code: int
    events: list[dict]
    ledgers: Ledgers
    texts: list[str] = field(default_factory=list)

    @property
    def done(self) -> dict:
        return finished(self.events)


def _partitioned(
    lab: dict,
    wan: Wan,
    failpoint: str,
    on_record: Callable[[], bool],
    heal: bool,
    lazy: bool = False,
) -> Run:
    """Migrate the Redis east-1 -> west-1 under both clients (restored lazily if `lazy`), the
    hand-over held 3 s at `failpoint` and the WAN cut as it waits there. Returns once the
    migration ended and (if `heal`) the WAN healed, the clients still writing."""
    ledgers = Ledgers().__enter__()
    wan.cut_when(on_record, heal)
    proc = migrate_process(
        lab["config"],
        "--rounds",
        "1",
        *(["--lazy-restore"] if lazy else []),
        env={"WHIMBREL_FAILPOINTS": f"{failpoint}=sleep:3"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    events = [json.loads(line) for line in proc.stdout]
    code = proc.wait(timeout=300)
    assert events, proc.stderr.read()
    assert wan.cut_at is not None, "the partition never happened: the failpoint was not reached"
    if heal:
        assert wan.healed.wait(HEAL_AFTER_S + 10)
    time.sleep(1.0)  # the clients write on past the end
    texts = [e.get("text", "") for e in events if e["event"] == "LogLine"]
    return Run(code, events, ledgers, texts)


@pytest.mark.parametrize("heal", [True, False], ids=["healing", "not-healing"])
def test_a_partition_during_the_final_send_resumes_the_source(
    lab: dict, redis: str, wan: Wan, heal: bool
) -> None:
    run = _partitioned(lab, wan, "handover.after-dump", daemon_logged("dumped"), heal)
    assert run.code == 1 and not run.done["ok"], run.events[-5:]
    assert run.done["running_on"] == "east-1"
    assert run.done["error"].startswith("send:"), run.done["error"]
    assert reached(run.events) == "final"
    assert run.ledgers.target_only.acked == [], "a copy on the target answered a client"
    run.ledgers.assert_settled_on("east-1")


@pytest.mark.parametrize(
    ("heal", "lazy"),
    [(True, False), (False, False), (False, True)],
    ids=["healing", "not-healing", "not-healing-lazy"],
)
def test_a_partition_after_the_stream_before_the_commit_drops_the_fenced_copy(
    lab: dict, redis: str, wan: Wan, heal: bool, lazy: bool
) -> None:
    # The WAN cut once the final round's stream is sent, before the commit can follow it: the
    # target restores the whole round, fenced, and waits for a word that cannot now come. The
    # copy answered nobody, so the source resumes at once and the copy goes (restored lazily:
    # with the lazy-pages daemon filling it, which ends with it).
    run = _partitioned(lab, wan, "handover.after-send", target_restoring, heal, lazy)
    assert run.code == 1 and not run.done["ok"], run.events[-5:]
    assert run.done["running_on"] == "east-1"
    assert "the commit could not be sent" in run.done["error"], run.done["error"]
    assert reached(run.events) == "final"
    assert run.ledgers.target_only.acked == [], "the fenced copy answered a client"
    assert run.ledgers.follower.longest_gap_s < 10, "the source was held frozen"
    run.ledgers.assert_settled_on("east-1")


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_a_partition_after_the_commit_healing_lets_the_source_learn_it(
    lab: dict, redis: str, wan: Wan, lazy: bool
) -> None:
    # The target committed and serves; its answer is lost in the partition. The source stays
    # frozen, asking, until the WAN heals and the target's record says committed. Restored
    # lazily, the copy's memory fills from the target's own page files meanwhile: the WAN
    # plays no part in it.
    run = _partitioned(lab, wan, "receiver.after-commit", target_committed, True, lazy)
    assert run.code == 0 and run.done["ok"], run.events[-5:]
    assert run.done["lazy_restore"] is lazy
    assert run.done["running_on"] == "west-1"
    assert any("commit sent, no answer" in t for t in run.texts), run.texts
    assert reached(run.events) == "restore"
    assert run.ledgers.target_only.acked, "the target-only client was never answered"
    run.ledgers.assert_settled_on("west-1")


def test_a_partition_after_the_commit_not_healing_is_settled_by_the_operator_from_the_record(
    lab: dict, redis: str, wan: Wan
) -> None:
    # The source's daemon cannot learn the verdict and gives up, the source frozen; the
    # operator reaches both nodes though they cannot reach each other, and settles it from the
    # target's record, the WAN still cut.
    run = _partitioned(lab, wan, "receiver.after-commit", target_committed, heal=False)
    assert run.code == 0 and run.done["ok"], run.events[-5:]
    assert run.done["running_on"] == "west-1"
    assert any("settling from west-1's record" in t for t in run.texts), run.texts
    assert reached(run.events) == "restore"
    assert run.ledgers.target_only.acked, "the target-only client was never answered"
    run.ledgers.assert_settled_on("west-1")
