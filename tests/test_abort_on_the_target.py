"""The target's abort (remote/decision.py): the fenced copy goes even when two parties abort at
once (the receiver at its session's end, the operator settling a hand-over whose daemon died),
and a final round that fails on the target answers with the verdict it recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.node_helpers import load

decision = load("decision")
IN_PROGRESS = "docker rm: Error response from daemon: removal of container c is already in progress"
GONE = "docker rm: Error response from daemon: No such container: c"


def _docker_answering(monkeypatch: pytest.MonkeyPatch, *errors: str) -> list[tuple]:
    calls: list[tuple] = []
    answers = iter(errors)

    def target_docker(*args: str, sock: str) -> str:
        calls.append(args)
        error = next(answers, None)
        if error:
            raise RuntimeError(error)
        return ""

    monkeypatch.setattr(decision, "target_docker", target_docker)
    monkeypatch.setattr(decision.time, "sleep", lambda _s: None)
    return calls


def test_a_removal_already_under_way_is_waited_for_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _docker_answering(monkeypatch, IN_PROGRESS, IN_PROGRESS, GONE)
    decision._remove("/run/docker.sock", "c")
    assert calls == [("rm", "-f", "c")] * 3


def test_a_removal_that_fails_otherwise_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    _docker_answering(monkeypatch, "docker rm: Error response from daemon: device busy")
    with pytest.raises(RuntimeError, match="device busy"):
        decision._remove("/run/docker.sock", "c")


def _expecting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mig: str) -> None:
    monkeypatch.setattr(decision, "DECISIONS", str(tmp_path))
    (tmp_path / mig).mkdir()


def test_a_final_round_that_fails_here_records_aborted_and_says_so_though_the_copy_stays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The source's commit may be on its way behind the stream: it resumes on this answer
    # alone, so the verdict is given even when the copy cannot go yet (its dockerd away).
    _expecting(monkeypatch, tmp_path, "m1")
    _docker_answering(monkeypatch, "docker rm: Cannot connect to the Docker daemon")
    answer = decision.refuse("m1", "/run/docker.sock", "c")
    assert answer["decision"] == "aborted" == decision.recorded("m1")
    assert "Cannot connect" in answer["warning"]


def test_a_refusal_after_a_commit_was_recorded_leaves_the_commit_and_the_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _expecting(monkeypatch, tmp_path, "m2")
    calls = _docker_answering(monkeypatch)
    assert decision.decide("m2", "committed") == "committed"
    assert decision.refuse("m2", "/run/docker.sock", "c") == {"decision": "committed"}
    assert calls == []
