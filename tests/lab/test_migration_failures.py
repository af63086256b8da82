"""Injected failures: each ends with the container serving on exactly one node, every
acknowledged write present, and nothing of the migration left behind.

The faults are injected through named failpoints (backends/failpoints.py, armed in
WHIMBREL_FAILPOINTS), except the full disk, which is real: the target's dockerd restarted on a
small tmpfs, and the killed whimbrel, which is a real SIGKILL."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.migration_tools import (
    EAST1,
    NAME,
    Ledgers,
    docker_root_on_tmpfs,
    drop_ssh_connections,
    exists_on,
    finished,
    interrupted,
    migrate,
    migrate_process,
    next_whimbrel_run,
    reached,
    running_on,
    serving_on,
    state_on,
    wait_until,
)
from tests.labtools import ssh

pytestmark = pytest.mark.lab


def _failing_migration(
    lab: dict, *extra: str, failpoints: str | None = None, cause: str, phase: str
) -> dict:
    """A migration that must fail with `cause` in `phase`, the container left serving on
    east-1 with both clients' every acknowledged write, nothing left behind."""
    env = {"WHIMBREL_FAILPOINTS": failpoints} if failpoints else {}
    with Ledgers() as ledgers:
        code, events = migrate(lab["config"], f"east-1/{NAME}", "west-1", *extra, env=env)
        time.sleep(0.5)
        done = finished(events)
        assert code != 0 and not done["ok"]
        assert done["running_on"] == "east-1"
        assert cause in done["error"], done["error"]
        assert reached(events) == phase, [e for e in events if e["event"] == "PhaseChanged"]
        ledgers.assert_settled_on("east-1")
    return done


def _landing_migration(lab: dict, failpoints: str) -> list[dict]:
    """A migration that must land on west-1 despite `failpoints`; its events."""
    code, events = migrate(
        lab["config"], f"east-1/{NAME}", "west-1", "--rounds", "1",
        env={"WHIMBREL_FAILPOINTS": failpoints},
    )  # fmt: skip
    done = finished(events)
    assert code == 0 and done["ok"] and done["running_on"] == "west-1", done
    return events


def test_the_data_channel_killed_in_the_second_round_rolls_back(lab: dict, redis: str) -> None:
    _failing_migration(
        lab, "--rounds", "3", failpoints="kill-link-round-1", cause="link closed", phase="precopy"
    )


@pytest.mark.parametrize("restore", [[], ["--lazy-restore"]], ids=["eager", "lazy"])
def test_a_restore_failing_on_the_target_rolls_back(
    lab: dict, redis: str, restore: list[str]
) -> None:
    # The image corrupted on the target fails CRIU itself, whose error is quoted: Docker's
    # restore, or first (lazily) the lazy-pages daemon, which then never runs.
    done = _failing_migration(
        lab, "--rounds=1", *restore, failpoints="corrupt-image", cause="restore:", phase="restore"
    )
    assert "Magic doesn't match for inventory.img" in done["error"], done["error"]


def test_a_lazy_restore_failing_once_its_daemon_listens_rolls_back_and_the_daemon_goes(
    lab: dict, redis: str
) -> None:
    # The lazy-pages daemon is up and waiting for a restore that never comes: it is killed
    # (it fills nothing yet), or it would wait in accept() for good (no_leftovers finds it).
    _failing_migration(
        lab,
        "--rounds=1",
        "--lazy-restore",
        failpoints="receiver.before-restore=error",
        cause="failpoint receiver.before-restore",
        phase="restore",
    )


def test_the_connection_to_the_target_dropped_in_the_final_round_rolls_back(
    lab: dict, redis: str
) -> None:
    # Dropped behind the stream, before the commit could follow it: the target, whole round
    # in hand, restores and then, never told to commit, drops its copy.
    _failing_migration(
        lab, "--rounds", "1", failpoints="drop-final-link",
        cause="commit: the commit could not be sent", phase="final",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("failpoint", "phase", "last_step"),
    [
        ("handover.after-pause", "final", "frozen"),
        ("handover.after-dump", "final", "dumped"),
        ("handover.after-send", "final", "dumped"),
    ],
    ids=["after-pause", "after-dump", "after-send"],
)
def test_the_hand_over_daemon_killed_is_settled_from_the_targets_record(
    lab: dict, redis: str, failpoint: str, phase: str, last_step: str
) -> None:
    _failing_migration(
        lab, "--rounds", "1", failpoints=f"{failpoint}=kill", phase=phase,
        cause=f"the hand-over daemon died (its last step: {last_step})",
    )  # fmt: skip


def test_the_hand_over_daemon_killed_once_its_commit_went_is_settled_as_committed(
    lab: dict, redis: str
) -> None:
    # The commit follows the stream: the target restored and recorded it whatever became of
    # the source's daemon, so the operator settles the migration as done from that record.
    with Ledgers() as ledgers:
        events = _landing_migration(lab, "handover.after-restore=kill")
        said = [e.get("text", "") for e in events if e["event"] == "LogLine"]
        died = "the hand-over daemon died (its last step: restored): settling from west-1's record"
        assert any(died in text for text in said), said
        time.sleep(0.5)
        ledgers.assert_settled_on("west-1")


def test_the_commit_record_failing_to_be_written_rolls_back(lab: dict, redis: str) -> None:
    # The commit reached the target, which failed before recording it: the source asks, the
    # target records "aborted" then, and its fenced copy goes.
    _failing_migration(
        lab, "--rounds", "1", failpoints="receiver.before-commit-record", phase="restore",
        cause="the target recorded aborted",
    )  # fmt: skip


def test_docker_pause_failing_leaves_the_source_running(lab: dict, redis: str) -> None:
    _failing_migration(
        lab, "--rounds", "1", failpoints="handover.before-pause", phase="final",
        cause="freeze: failpoint handover.before-pause",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("failpoint", "phase", "cause"),
    [("criu.dump-round", "precopy", "CRIU dump failed"),
     ("criu.dump-final", "final", "dump: CRIU dump failed")],
    ids=["in-a-round", "in-the-final"],
)  # fmt: skip
def test_criu_failing_to_dump_leaves_the_source_running(
    lab: dict, redis: str, failpoint: str, phase: str, cause: str
) -> None:
    _failing_migration(lab, "--rounds", "1", failpoints=failpoint, phase=phase, cause=cause)


def test_the_source_failing_to_be_removed_after_the_commit_is_removed_by_recover(
    lab: dict, redis: str
) -> None:
    with Ledgers() as ledgers:
        _landing_migration(lab, "handover.remove-source")
        # Stopped for good (paused, its restart policy off), not yet removed.
        assert state_on("east-1", NAME) == "paused"
        assert "no" in ssh(
            EAST1, f"docker inspect -f '{{{{.HostConfig.RestartPolicy.Name}}}}' {NAME}"
        )
        recovered = next_whimbrel_run(lab["config"], "recover", "--json")
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        found = json.loads(recovered.stdout)
        assert [(r["settled"], r["running_on"]) for r in found] == [(True, "west-1")], found
        time.sleep(0.5)
        ledgers.assert_settled_on("west-1")


@pytest.fixture
def target_disk_full(lab: dict) -> Iterator[Path]:
    """The target's Docker data root on a 64 MiB tmpfs: room for the image (17 MB), far too
    little for the container's state (~75 MB)."""
    with docker_root_on_tmpfs("west-1", "64m") as root:
        yield root


def test_a_full_disk_on_the_target_rolls_back(
    lab: dict, redis: str, target_disk_full: Path
) -> None:
    _failing_migration(lab, "--mode", "iterative", cause="No space left", phase="precopy")


def test_whimbrel_killed_in_the_final_round_is_finished_by_the_nodes_and_reported_after(
    lab: dict, redis: str
) -> None:
    with Ledgers() as ledgers:
        proc = migrate_process(lab["config"], "--rounds", "1")
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "PhaseChanged" and event["phase"] == "final":
                proc.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                break
        proc.wait()
        # The source's hand-over agent finishes on its own: the target serves and the source
        # container is gone, with nobody left to tell it to.
        wait_until(
            lambda: running_on(NAME) == ["west-1"] and not exists_on("east-1", NAME), timeout=60
        )
        took = time.monotonic() - killed_at
        print(f"whimbrel killed in the final round: serving on west-1 only, {took:.1f} s after")
        # The next whimbrel start reports what happened and settles what was left.
        ls = next_whimbrel_run(lab["config"]).stderr
        assert "finished while whimbrel was away" in ls, ls
        assert "runs on west-1" in ls
        ledgers.assert_settled_on("west-1")


def test_whimbrel_killed_in_pre_copy_stands_the_armed_hand_over_down_and_is_reported_after(
    lab: dict, redis: str
) -> None:
    # The hand-over daemon is armed (its sessions open) from the first round on: with
    # whimbrel gone before firing it, it must stand down, never freeze the container.
    with Ledgers() as ledgers:
        proc = migrate_process(lab["config"], "--rounds", "4")
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "RoundFinished" and event["index"] == 0:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
        time.sleep(3)
        assert serving_on(NAME) == ["east-1"]
        assert ledgers.follower.longest_gap_s < 1.0, "the container was frozen"
        ls = next_whimbrel_run(lab["config"]).stderr
        assert "did not finish while whimbrel was away" in ls, ls
        assert "runs on east-1" in ls
        ledgers.assert_settled_on("east-1")


def test_the_operator_losing_the_source_mid_hand_over_follows_it_again_and_loses_nothing(
    lab: dict, redis: str
) -> None:
    # The daemon on the source goes on without whimbrel; whimbrel must neither undo nor lose
    # track of it: it reconnects and reads the hand-over's log on from where it was.
    with Ledgers() as ledgers:
        proc = migrate_process(lab["config"], "--rounds", "1")
        assert proc.stdout is not None
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "PhaseChanged" and events[-1]["phase"] == "final":
                assert drop_ssh_connections("wb-east-1") > 0
        # --json reports a failed migration in its events; a crash would be on stderr.
        assert proc.wait(timeout=300) == 0, (events[-8:], proc.stderr and proc.stderr.read())
        time.sleep(0.5)
        done = finished(events)
        assert done["ok"] and done["running_on"] == "west-1"
        assert any("following the hand-over" in e.get("text", "") for e in events), events
        ledgers.assert_settled_on("west-1")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_whimbrel_interrupted_in_pre_copy_rolls_back_cleanly(
    lab: dict, redis: str, signum: signal.Signals
) -> None:
    # Ctrl-C, a kill, a closed terminal: a clean rollback at the next round boundary.
    with Ledgers() as ledgers:
        code, events = interrupted(
            lab["config"], signum, lambda e: e["event"] == "RoundFinished" and e["index"] == 1,
            "--rounds", "4",
        )  # fmt: skip
        assert code == 1
        done = finished(events)
        assert not done["ok"] and "aborted by the operator" in done["error"]
        assert reached(events) == "precopy"
        time.sleep(0.5)
        ledgers.assert_settled_on("east-1")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=str)
def test_whimbrel_interrupted_in_the_final_round_follows_it_to_its_end(
    lab: dict, redis: str, signum: signal.Signals
) -> None:
    # Too late to roll back: the source's daemon finishes the hand-over, and whimbrel stays
    # to see it end and clean up, instead of dying with the migration half-reported.
    with Ledgers() as ledgers:
        code, events = interrupted(
            lab["config"], signum,
            lambda e: e["event"] == "PhaseChanged" and e["phase"] == "final", "--rounds", "1",
        )  # fmt: skip
        assert code == 0, events[-5:]
        done = finished(events)
        assert done["ok"] and done["running_on"] == "west-1"
        time.sleep(0.5)
        ledgers.assert_settled_on("west-1")


def test_a_second_migration_of_the_same_container_is_refused_while_one_runs(
    lab: dict, redis: str
) -> None:
    first = migrate_process(lab["config"], "--rounds", "3")
    assert first.stdout is not None
    for line in first.stdout:
        if json.loads(line)["event"] == "RoundStarted":
            break
    code, events = migrate(lab["config"], f"east-1/{NAME}", "west-2")
    assert code != 0
    assert "already being migrated" in finished(events)["error"]
    assert first.wait(timeout=300) == 0
    assert running_on(NAME) == ["west-1"]


@pytest.mark.parametrize(
    ("target", "said"),
    [("east-1", "already runs on east-1"), ("nowhere", "no node named 'nowhere'")],
)
def test_a_refused_target_leaves_the_container_running_on_its_source_and_says_so(
    lab: dict, redis: str, target: str, said: str
) -> None:
    code, events = migrate(lab["config"], f"east-1/{NAME}", target)
    done = finished(events)
    assert code != 0 and said in done["error"], done["error"]
    assert (done["running_on"], serving_on(NAME)) == ("east-1", ["east-1"])
