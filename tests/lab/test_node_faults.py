"""Faults of the nodes themselves during a migration: the target's dockerd stopping in the
restore, full disks, the target out of reach during cleanup, migrations at once, the lock of
a killed migration. Each with both client ledgers (migration_tools.Ledgers): the container
ends on exactly one node with every acknowledged write, and nothing is left behind, with
`whimbrel recover` run where the test says the outcome needs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.migration_tools import (
    NAME,
    NODES,
    WORK_DIRS,
    Ledgers,
    daemon_logged,
    docker_root_on_tmpfs,
    drop_ssh_connections,
    events_of,
    finished,
    migrate_process,
    next_whimbrel_run,
    process_state,
    reached,
    remove_everywhere,
    start_redis,
    wait_until,
    when,
)
from whimbrel.backends.lab import daemons
from whimbrel.backends.lab.topology import build_topology
from whimbrel.backends.lab.workloads import load_redis

pytestmark = pytest.mark.lab


def _recover(lab: dict) -> list[dict]:
    proc = next_whimbrel_run(lab["config"], "recover", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _fill(directory: Path, leave: int) -> None:
    """Fill the file system holding `directory` up to `leave` free bytes."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize - leave
    with open(directory / "filler", "wb") as f:
        while free > 0:
            chunk = min(free, 1 << 20)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            free -= chunk


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_targets_dockerd_stopping_in_the_restore_leaves_the_source_running(
    lab: dict, redis: str, sig: signal.Signals
) -> None:
    node = build_topology().node("west-1")
    with Ledgers() as ledgers:
        try:
            watcher = when(daemon_logged("sent"), lambda: daemons.stop_dockerd(node, sig))
            code, events = events_of(
                migrate_process(
                    lab["config"],
                    "--rounds",
                    "1",
                    env={"WHIMBREL_FAILPOINTS": "receiver.before-restore=sleep:3"},
                )
            )
            watcher.join()
        finally:
            daemons.start_dockerd(node)
        done = finished(events)
        assert code == 1 and done["running_on"] == "east-1", done
        assert "restore" in done["error"], done["error"]
        assert reached(events) == "restore"
        # What the target's dockerd could not remove while away, `recover` removes.
        assert [(r["settled"], r["running_on"]) for r in _recover(lab)] == [(True, "east-1")]
        ledgers.assert_settled_on("east-1")


@pytest.fixture
def source_disk(lab: dict) -> Iterator[Path]:
    """The source's work dir (where CRIU dumps) on a 200 MiB tmpfs of its own."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m,mode=0700", "whimbrel-test-disk",
                    WORK_DIRS], check=True)  # fmt: skip
    try:
        yield WORK_DIRS
    finally:
        (WORK_DIRS / "filler").unlink(missing_ok=True)
        assert [p.name for p in WORK_DIRS.iterdir()] == [], "the migration left its work dir"
        subprocess.run(["umount", WORK_DIRS], check=True)


def test_a_full_disk_on_the_source_in_a_round_leaves_the_source_running(
    lab: dict, redis: str, source_disk: Path
) -> None:
    _fill(source_disk, leave=16 << 20)  # less than a dump of the container's 60 MB
    with Ledgers() as ledgers:
        code, events = events_of(migrate_process(lab["config"], "--rounds", "2"))
        done = finished(events)
        assert code == 1 and done["running_on"] == "east-1", done
        assert "CRIU dump failed" in done["error"], done["error"]
        assert reached(events) == "precopy"
        (source_disk / "filler").unlink()
        ledgers.assert_settled_on("east-1")


def test_a_full_disk_on_the_source_in_the_final_dump_leaves_the_source_running(
    lab: dict, redis: str, source_disk: Path
) -> None:
    # (1 MiB is left: the hand-over's own log and outcome are a few KiB.)
    with Ledgers() as ledgers:
        code, events = _filled_when_fired(lab, source_disk, leave=1 << 20)
        done = finished(events)
        assert code == 1 and done["running_on"] == "east-1", done
        assert done["error"].startswith("dump: CRIU dump failed"), done["error"]
        assert reached(events) == "final"
        (source_disk / "filler").unlink()
        ledgers.assert_settled_on("east-1")


@pytest.fixture
def target_disk(lab: dict) -> Iterator[Path]:
    """The target's Docker data root on a 400 MiB tmpfs: room for the rounds, until filled."""
    with docker_root_on_tmpfs("west-1", "400m") as root:
        yield root


def _filled_when_fired(lab: dict, directory: Path, leave: int) -> tuple[int, list[dict]]:
    """A migration whose disk at `directory` fills while the fired hand-over waits to freeze
    (the rounds had room)."""
    watcher = when(daemon_logged("fired"), lambda: _fill(directory, leave))
    env = {"WHIMBREL_FAILPOINTS": "handover.before-pause=sleep:3"}
    result = events_of(migrate_process(lab["config"], "--rounds", "1", env=env))
    watcher.join()
    return result


def test_a_full_disk_on_the_target_in_the_final_round_leaves_the_source_running(
    lab: dict, redis: str, target_disk: Path
) -> None:
    with Ledgers() as ledgers:
        code, events = _filled_when_fired(lab, target_disk, leave=0)
        done = finished(events)
        assert code == 1 and done["running_on"] == "east-1", done
        assert "No space left" in done["error"], done["error"]
        assert reached(events) in ("final", "restore")  # the send, or the restore's files
        (target_disk / "filler").unlink()
        if any(r["settled"] is False for r in _recover(lab)):
            pytest.fail("recover could not settle it with the disk freed")
        ledgers.assert_settled_on("east-1")


def test_the_target_out_of_reach_during_cleanup_is_cleaned_up_by_recover(
    lab: dict, redis: str
) -> None:
    node = build_topology().node("west-1")

    def lose_target() -> None:
        daemons.stop_sshd(node)
        drop_ssh_connections("wb-west-1")

    with Ledgers() as ledgers:
        try:
            watcher = when(daemon_logged("committed"), lose_target)
            code, events = events_of(migrate_process(lab["config"], "--rounds", "1"))
            watcher.join()
        finally:
            daemons.start_sshd(node)
        done = finished(events)
        assert code == 0 and done["ok"] and done["running_on"] == "west-1", done
        texts = [e.get("text", "") for e in events if e["event"] == "LogLine"]
        assert any("cleanup incomplete" in t for t in texts), texts
        assert [(r["settled"], r["running_on"]) for r in _recover(lab)] == [(True, "west-1")]
        ledgers.assert_settled_on("west-1")


SECOND, SECOND_PORT = "fragile2", 6391


@pytest.fixture
def second_redis(lab: dict, request: pytest.FixtureRequest) -> Iterator[str]:
    start_redis(request.param, SECOND, SECOND_PORT)
    yield request.param
    remove_everywhere(SECOND)


def _at_once(lab: dict, moves: list[tuple[Ledgers, str, str]]) -> None:
    """Migrations started together, each under its own ledgers; each must end where it says,
    consistent (on a clash one may roll back: never both lose)."""
    with Ledgers(*moves[0][0]) as first, Ledgers(*moves[1][0]) as second:
        procs = [
            migrate_process(lab["config"], "--rounds", "2", container=c, target=t)
            for _, c, t in moves
        ]
        results = [events_of(p) for p in procs]
        for ledgers, (_, events) in zip((first, second), results, strict=True):
            done = finished(events)
            print(
                f"{done['container']}: ok={done['ok']} on {done['running_on']}", done.get("error")
            )
            assert done["running_on"] in ("east-1", "east-2", "west-1", "west-2"), done
            ledgers.assert_settled_on(done["running_on"])
        assert all(code == 0 for code, _ in results), [finished(e)["error"] for _, e in results]


@pytest.mark.parametrize("second_redis", ["east-1"], indirect=True)
def test_two_migrations_out_of_one_source_at_once_both_land(
    lab: dict, redis: str, second_redis: str
) -> None:
    _at_once(lab, [
        ((NAME, 6390, "east-1", "west-1"), f"east-1/{NAME}", "west-1"),
        ((SECOND, SECOND_PORT, "east-1", "west-2"), f"east-1/{SECOND}", "west-2"),
    ])  # fmt: skip


@pytest.mark.parametrize("second_redis", ["east-2"], indirect=True)
def test_two_migrations_into_one_target_at_once_both_land(
    lab: dict, redis: str, second_redis: str
) -> None:
    _at_once(lab, [
        ((NAME, 6390, "east-1", "west-1"), f"east-1/{NAME}", "west-1"),
        ((SECOND, SECOND_PORT, "east-2", "west-1"), f"east-2/{SECOND}", "west-1"),
    ])  # fmt: skip


@pytest.mark.parametrize("second_redis", ["west-1"], indirect=True)
def test_a_dump_while_a_restore_runs_on_its_node_leaves_the_source_running(
    lab: dict, redis: str, second_redis: str
) -> None:
    # CRIU reads runc.conf for dumps too, and its settings beat runc's: the restore's
    # leave-stopped in it would stop a container dumped meanwhile on the same host. Here
    # west-1 restores one container (held 30 s with runc.conf edited) while a second one
    # migrates out of west-1: its round waits for the file to be put back, and its source
    # keeps serving.
    with Ledgers() as first, Ledgers(SECOND, SECOND_PORT, "west-1", "east-2") as second:
        incoming = migrate_process(
            lab["config"], "--rounds", "1",
            env={"WHIMBREL_FAILPOINTS": "receiver.before-restore=sleep:30"},
        )  # fmt: skip
        wait_until(daemon_logged("sent"), timeout=120)
        assert "leave-stopped" in Path("/etc/criu/runc.conf").read_text()
        # Rounds to spare after round 0: the check that the source answers must not reach it
        # frozen for its final dump (its connection would wait unaccepted, then be reset).
        outgoing = migrate_process(
            lab["config"], "--rounds", "3", container=f"west-1/{SECOND}", target="east-2"
        )
        assert outgoing.stdout is not None
        head = []
        for line in outgoing.stdout:
            head.append(json.loads(line))
            if head[-1]["event"] == "RoundFinished":
                break
        # Stopped for good ("T") is what runc.conf's leave-stopped would leave; a trace stop
        # ("t") is the next round's dump holding it a moment, and passes.
        wait_until(lambda: process_state("west-1", SECOND) != "t", timeout=10)
        assert process_state("west-1", SECOND) not in ("T", "t")
        load_redis(NODES["west-1"], SECOND_PORT, 1)  # it answers
        # Both ended before either is checked: each leaves west-1 as the other found it.
        ended = [(first, events_of(incoming), "west-1"), (second, events_of(outgoing), "east-2")]
        for ledgers, (code, events), place in ended:
            done = finished(events)
            assert code == 0 and done["running_on"] == place, done.get("error")
            ledgers.assert_settled_on(place)


def test_the_lock_of_a_killed_migration_does_not_block_the_next_one(lab: dict, redis: str) -> None:
    with Ledgers() as ledgers:
        proc = migrate_process(lab["config"], "--rounds", "4")
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["event"] == "RoundFinished":
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
        time.sleep(1)
        # The next migration of the same container settles the dead one and takes its lock.
        code, events = events_of(migrate_process(lab["config"], "--rounds", "1"))
        done = finished(events)
        assert code == 0 and done["ok"] and done["running_on"] == "west-1", done
        ledgers.assert_settled_on("west-1")


def test_what_dead_migrations_left_is_swept_by_the_next_one(lab: dict, redis: str) -> None:
    # Two migrations whose operator never came back, as their work dirs and locks would be:
    # one that died in preflight (nothing to settle: it goes whole) and one whose hand-over
    # ended (its dump goes; what `recover` reads stays).
    old = time.time() - 3600
    preflight, ended = WORK_DIRS / "deadbeef0001", WORK_DIRS / "deadbeef0002"
    for wd in (preflight, ended):
        (wd / "final").mkdir(parents=True)
        (wd / "final" / "pages-1.img").write_bytes(os.urandom(1 << 20))
        (wd / "prepare.json").write_text("{}")
    (ended / "handover.pid").write_text("999999999")
    (ended / "handover.json").write_text(json.dumps({"ok": False, "running_on": "source"}))
    stale_lock = Path("/run/whimbrel-locks") / ("0" * 64)
    stale_lock.parent.mkdir(mode=0o700, exist_ok=True)
    stale_lock.write_text(json.dumps({"migration": ended.name, "since": old}))
    for wd in (preflight, ended):
        os.utime(wd, (old, old))
    try:
        with Ledgers() as ledgers:
            code, events = events_of(migrate_process(lab["config"], "--rounds", "1"))
            assert code == 0 and finished(events)["running_on"] == "west-1"
            assert not preflight.exists()
            assert sorted(p.name for p in ended.iterdir()) == [
                "handover.json", "handover.pid", "prepare.json"
            ]  # fmt: skip
            assert not stale_lock.exists()
            subprocess.run(["rm", "-rf", str(ended)], check=True)
            ledgers.assert_settled_on("west-1")
    finally:
        subprocess.run(["rm", "-rf", str(preflight), str(ended), str(stale_lock)])


def test_the_link_key_expiring_mid_migration_does_not_stop_the_hand_over(
    lab: dict, redis: str
) -> None:
    # The key dies by itself (expiry-time, here within a minute) while the armed hand-over
    # waits past it: its sessions, opened before, carry the final round; nothing needs the
    # key again, and nothing of it is left after.
    keys = Path("/var/lib/wblab/nodes/west-1/authorized_keys")
    expiries: list[str] = []

    def note_expiry() -> None:
        expiries.extend(re.findall(r'expiry-time="(\d{12})"', keys.read_text()))

    # The key's expiry-time is to the minute: granted late in a minute, it would expire in
    # seconds, before the link's first use. Started early in one, it lives 30 s or more.
    time.sleep(max(0.0, 60 - time.time() % 60) if time.time() % 60 > 30 else 0.0)
    with Ledgers() as ledgers:
        watcher = when(daemon_logged("fired"), note_expiry)
        env = {"WHIMBREL_FAILPOINTS": "link.short-ttl,handover.before-pause=sleep:65"}
        started = time.time()
        code, events = events_of(migrate_process(lab["config"], "--rounds", "1", env=env))
        watcher.join()
        done = finished(events)
        assert code == 0 and done["ok"] and done["running_on"] == "west-1", done
        assert len(expiries) == 1, expiries
        dumped = started + next(e["t"] for e in events if "dumped in" in e.get("text", ""))
        expired = time.mktime(time.strptime(expiries[0], "%Y%m%d%H%M"))
        assert started < expired < dumped, "the key had not expired before the final round"
        ledgers.assert_settled_on("west-1")
