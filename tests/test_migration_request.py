"""A migration request is checked before anything is touched: each bad field, one clear error."""

from __future__ import annotations

import math

import pytest

from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.errors import UsageError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "teleport", "--mode: 'teleport' is not one of auto, iterative, stop-and-copy"),
        ("downtime_target_s", 0.0, "--downtime-target must be more than zero"),
        ("policy", "greedy", "--policy: 'greedy' is not one of"),
        ("rounds", -1, "--rounds must be between 0 and"),
        ("brownout_weight", -0.5, "--brownout-weight must be zero or more"),
        ("brownout_weight", math.nan, "--brownout-weight must be zero or more"),
    ],
)
def test_a_bad_request_field_is_refused_with_its_flag_named(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(")):
        MigrationRequest("east-1/kv", "west-1", **{field: value})  # type: ignore[arg-type]


def test_the_default_request_plans_for_the_least_downtime() -> None:
    assert MigrationRequest("kv", "west-1").brownout_weight == 0.0
