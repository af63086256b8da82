"""The downtime in the hand-over's parts: the source daemon's split of its own clock, the
model's predicted parts for every policy, and the value as records carry it."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.node_helpers import load
from whimbrel.app.engine_events import event_from_json
from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.events import MigrationFinished, event_json
from whimbrel.backends.hooks import HookRun
from whimbrel.backends.model import POLICIES, ModelInputs, plan

handover = load("handover")

MARKS = {"freeze": 100.0, "frozen": 100.02, "dumped": 100.17, "sent": 100.40, "restored": 100.70}


def test_the_daemons_parts_are_the_steps_between_its_marks_and_add_up_to_the_downtime() -> None:
    parts = DowntimeParts.from_json(handover.downtime_parts(MARKS, 0.05, 0.01, 100.75))
    assert parts is not None
    names, seconds = zip(*parts.named(), strict=True)
    assert names == ("freeze", "dump", "diff", "send", "restore", "commit", "resume", "answer")
    # The daemon does not know the link's RTT: the engine tells the answer apart (below).
    assert seconds == pytest.approx((0.02, 0.15, 0.05, 0.18, 0.30, 0.04, 0.01, 0.0))
    assert parts.total_s == pytest.approx(100.75 - 100.0)


def test_a_diff_or_resume_longer_than_its_window_is_cut_to_it_so_no_part_goes_negative() -> None:
    # Clocks of two processes (the hashing's, the target's) cannot overrun the source's window.
    parts = DowntimeParts.from_json(handover.downtime_parts(MARKS, 9.0, 9.0, 100.75))
    assert parts is not None
    assert (parts.diff_s, parts.send_s) == pytest.approx((0.23, 0.0))
    assert (parts.resume_s, parts.commit_s) == pytest.approx((0.05, 0.0))
    assert parts.total_s == pytest.approx(0.75)


def test_the_restore_is_the_targets_own_time_and_the_send_holds_the_ways_there_and_back() -> None:
    # The source's marks put the stripes' end in the send and the answer's way back in the
    # restore; the target's own clock says how long its restore took.
    parts = DowntimeParts.from_json(handover.downtime_parts(MARKS, 0.05, 0.01, 100.75, 0.35))
    assert parts is not None
    assert (parts.diff_s, parts.send_s, parts.restore_s) == pytest.approx((0.05, 0.13, 0.35))
    assert parts.total_s == pytest.approx(0.75)
    longer = DowntimeParts.from_json(handover.downtime_parts(MARKS, 0.05, 0.01, 100.75, 9.0))
    assert longer is not None
    assert (longer.send_s, longer.restore_s) == pytest.approx((0.0, 0.48))
    assert longer.total_s == pytest.approx(0.75)


def test_the_answers_way_back_is_told_apart_from_the_send_and_the_downtime_stays_whole() -> None:
    parts = DowntimeParts(0.02, 0.15, 0.0, 0.18, 0.3, 0.04, 0.01)
    told = parts.with_answer(0.025)
    assert (told.send_s, told.answer_s) == pytest.approx((0.155, 0.025))
    assert told.total_s == pytest.approx(parts.total_s)
    assert told.served_s == pytest.approx(parts.total_s - 0.025)
    # Told apart again (a record read back), it is the same split, not a second one.
    assert told.with_answer(0.025) == told


def test_an_answer_longer_than_the_send_takes_the_send_and_no_part_goes_negative() -> None:
    told = DowntimeParts(0.02, 0.15, 0.0, 0.01, 0.3, 0.0, 0.0).with_answer(0.1)
    assert (told.send_s, told.answer_s) == pytest.approx((0.0, 0.01))
    assert told.total_s == pytest.approx(0.48)


def test_a_record_from_before_the_answer_was_told_apart_reads_with_it_in_its_send() -> None:
    old = {name: 0.1 for name in ("freeze_s", "dump_s", "diff_s", "send_s", "restore_s",
                                  "commit_s", "resume_s")}  # fmt: skip
    parts = DowntimeParts.from_json(old)
    assert parts is not None and parts.answer_s == 0 and parts.served_s == parts.total_s


def test_an_answer_without_the_targets_resume_time_leaves_it_all_in_the_commit() -> None:
    parts = DowntimeParts.from_json(handover.downtime_parts(MARKS, 0.0, None, 100.75))
    assert parts is not None and parts.resume_s == 0 and parts.commit_s == pytest.approx(0.05)


@given(
    size=st.floats(1e6, 4e9),
    dirty=st.floats(0, 5e7),
    bandwidth=st.floats(1e6, 1e9),
    rtt=st.floats(0.0005, 0.3),
    dump_rate=st.one_of(st.none(), st.floats(1e8, 5e9)),
    incremental=st.booleans(),
)
def test_every_policys_predicted_parts_add_up_to_its_downtime(
    size: float, dirty: float, bandwidth: float, rtt: float, dump_rate: float | None,
    incremental: bool,
) -> None:  # fmt: skip
    inputs = ModelInputs(
        size=size, dirty_rate=dirty, bandwidth=bandwidth, rtt=rtt, dump_time=0.2,
        restore_time=0.3, final_round_trips=1.2, dump_rate=dump_rate,
        incremental_dumps=incremental,
    )  # fmt: skip
    for policy in POLICIES:
        p = plan(inputs, policy)
        parts = p.downtime_parts
        assert parts.total_s == pytest.approx(p.downtime_s, rel=1e-9)
        # The link's round trips go with the send (the commit follows the stream), but for
        # the answer's way back.
        assert parts.send_s == pytest.approx(p.final_round.bytes / bandwidth + 0.7 * rtt)
        assert parts.answer_s == pytest.approx(rtt / 2)
        assert parts.commit_s == 0
        assert min(s for _, s in parts.named()) >= 0


@pytest.mark.parametrize(
    "data",
    [None, [1, 2], {"freeze_s": 1}, {**dict.fromkeys(("freeze_s", "dump_s", "diff_s", "send_s",
     "restore_s", "commit_s"), 0.1), "resume_s": -1}, {**dict.fromkeys(("freeze_s", "dump_s",
     "diff_s", "send_s", "restore_s", "commit_s"), 0.1), "resume_s": math.nan},
     {**dict.fromkeys(("freeze_s", "dump_s", "diff_s", "send_s", "restore_s", "commit_s"), 0.1),
      "resume_s": True}],
    ids=["none", "a-list", "missing-parts", "negative", "nan", "a-bool"],
)  # fmt: skip
def test_parts_that_are_not_all_finite_non_negative_seconds_are_none(data: object) -> None:
    assert DowntimeParts.from_json(data) is None


def test_the_summary_names_each_part_that_took_time_in_order() -> None:
    parts = DowntimeParts(0.02, 0.15, 0.0, 0.18, 0.3, 0.04, 0.01)
    assert parts.summary() == (
        "0.70 s: freeze 20 ms, dump 150 ms, send 180 ms, restore 300 ms, commit 40 ms, resume 10 ms"
    )
    assert parts.with_answer(0.025).summary() == (
        "0.70 s (served at 0.68 s): freeze 20 ms, dump 150 ms, send 155 ms, restore 300 ms, "
        "commit 40 ms, resume 10 ms, answer 25 ms"
    )


def test_a_finished_events_parts_and_hook_runs_come_back_from_its_json_record() -> None:
    measured = DowntimeParts(0.02, 0.15, 0.05, 0.18, 0.3, 0.04, 0.01)
    predicted = DowntimeParts(0.0, 0.2, 0.0, 0.2, 0.25, 0.05, 0.0)
    finished = MigrationFinished(
        ok=True, container="east-1/kv", src="east-1", dst="west-1", running_on="west-1",
        mode="iterative", rounds=2, downtime_s=measured.total_s,
        predicted_downtime_s=predicted.total_s, total_time_s=9.0, predicted_total_time_s=8.0,
        bytes_sent=1000, predicted_bytes=900.0, downtime_parts=measured,
        predicted_downtime_parts=predicted,
        hooks=(HookRun("lb", "before_freeze", 0.04, 1), HookRun("lb", "commit", 1.6, 2, "busy")),
    )  # fmt: skip
    assert event_from_json(json.loads(json.dumps(event_json(finished)))) == finished
