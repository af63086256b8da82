"""The target's abort (remote/decision.py): the fenced copy goes even when two parties abort at
once (the receiver at its session's end, the operator settling a hand-over whose daemon died)."""

from __future__ import annotations

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
