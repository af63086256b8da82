"""The history record's keys are its interface (`recover`, `whimbrel history`, the benchmarks
read it as JSON): each part appears once the migration reaches it, in the order it did."""

from __future__ import annotations

from whimbrel.backends.events import MigrationFinished
from whimbrel.backends.migration_record import (
    Ending,
    LinkRecord,
    MigrationRecord,
    RoundRecord,
    Subject,
    Timing,
)
from whimbrel.backends.model import ModelInputs, plan

INPUTS = ModelInputs(size=64e6, dirty_rate=1e6, bandwidth=25e6, rtt=0.04)
FINISHED = MigrationFinished(
    ok=True, container="east-1/kv", src="east-1", dst="west-1", running_on="west-1",
    mode="iterative", rounds=2, downtime_s=1.0, predicted_downtime_s=0.9, total_time_s=9.0,
    predicted_total_time_s=8.0, bytes_sent=70_000_000, predicted_bytes=7e7,
)  # fmt: skip
EVENT_KEYS = [
    "event", "ok", "container", "src", "dst", "running_on", "mode", "rounds", "downtime_s",
    "predicted_downtime_s", "total_time_s", "predicted_total_time_s", "bytes_sent",
    "predicted_bytes", "brownouts_s", "downtime_parts", "predicted_downtime_parts", "lazy_restore",
    "lazy_fill_s", "hooks",
    "error",
    "record", "t", "extra",
]  # fmt: skip


ENDING_KEYS = ["pending_for", "warnings", "handover_result", "events"]


def _ending(status: str = "done") -> Ending:
    return Ending(FINISHED, status, None, [], {"ok": True}, [{"event": "PhaseChanged"}])


def test_a_record_that_never_named_its_container_holds_the_finished_event_after_its_id() -> None:
    record = MigrationRecord("m", 1.0, {"pid": 1}, ending=_ending("failed"))
    keys = list(record.to_json())
    assert keys[:3] == ["id", "started_at", "owner"]
    assert keys[3:] == [*EVENT_KEYS, "status", *ENDING_KEYS]


def test_a_pending_record_says_what_recover_needs_and_no_more() -> None:
    record = MigrationRecord("m", 1.0, {"pid": 1}, Subject("east-1/kv", "abc", "east-1", "west-1"))
    record.mode = "auto"
    record.link = LinkRecord("L1", "/s", "/d")
    record.target_id = "t1"
    out = record.to_json()
    assert out["status"] == "pending" and out["mode"] == "auto"
    assert out["link"] == {"id": "L1", "src_dir": "/s", "dst_dir": "/d"}
    assert "measured_rounds" not in out and "handover" not in out and "ok" not in out
    assert "hook_names" not in out  # none chosen
    record.hook_names = ("lb", "dns")
    assert record.to_json()["hook_names"] == ["lb", "dns"]  # for recover to run what is left


def test_a_finished_record_keeps_every_part_in_the_order_the_migration_reached_it() -> None:
    record = MigrationRecord("m", 1.0, {"pid": 1}, Subject("east-1/kv", "abc", "east-1", "west-1"))
    record.mode = "auto"
    record.link = LinkRecord("L1", "/s", "/d", stripes=2)
    record.target_id = "t1"
    record.mode, record.policy, record.inputs, record.plan = (
        "iterative",
        "latency-aware",
        INPUTS,
        plan(INPUTS),
    )
    record.measured_rounds += [
        RoundRecord(64e6, 2.6, 2.7, 25e6, 0.04, False, 0.1, 64e6, 2),
        RoundRecord(1e6, 0.04, 1.0, 25e6, 0.04, True, 0.3, 64e6, 2, restore_s=0.5),
    ]  # fmt: skip
    record.handover = True
    record.timing = Timing(3.0, 6.0, 1, 0.9)
    record.ending = _ending()
    out = record.to_json()
    reached = [
        "id", "started_at", "owner", "container", "container_id", "src", "dst", "status", "mode",
        "link", "target_id", "policy", "inputs", "plan", "measured_rounds", "handover", "timing",
        "last_plan",
    ]  # fmt: skip
    # The finished event's keys already there keep their place; the others follow.
    assert list(out) == reached + [k for k in EVENT_KEYS if k not in reached] + ENDING_KEYS
    assert out["mode"] == "iterative" and out["status"] == "done"
    assert out["link"]["stripes"] == 2 and out["inputs"]["size"] == 64e6
    assert [list(r) for r in out["measured_rounds"]] == [
        ["bytes", "transfer_s", "seconds", "throughput", "rtt", "final", "dump_s",
         "dumped_bytes", "stripes"],
        ["bytes", "transfer_s", "seconds", "throughput", "rtt", "final", "dump_s",
         "dumped_bytes", "restore_s", "stripes"],
    ]  # fmt: skip
    assert out["timing"] == {"preflight_s": 3.0, "rounds_s": 6.0}
    assert out["last_plan"] == {"rounds": 1, "downtime_s": 0.9}
