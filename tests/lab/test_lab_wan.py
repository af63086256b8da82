"""The emulated WAN delays and caps traffic between clusters, and only between clusters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.labtools import echo_rtt_s, in_netns, stream_throughput_bps
from whimbrel.backends.lab import lab as lab_module

pytestmark = pytest.mark.lab


@pytest.fixture
def wan(lab: dict) -> Iterator[None]:
    """Tests change the WAN; put the lab's settings back afterwards."""
    yield
    lab_module.set_wan(lab["rtt_ms"], lab["bandwidth_mbit"])


def _nodes(lab: dict) -> tuple[dict, dict, dict]:
    by_name = {n["name"]: n for n in lab["nodes"]}
    return by_name["east-1"], by_name["east-2"], by_name["west-1"]


@pytest.mark.parametrize("rtt_ms", [20, 50, 100])
def test_rtt_between_clusters_is_within_10_percent_of_the_set_value(
    lab: dict, wan: None, rtt_ms: int
) -> None:
    east1, _, west1 = _nodes(lab)
    lab_module.set_wan(rtt_ms, None)
    measured_ms = echo_rtt_s(east1["netns"], west1["wan_address"]) * 1000
    print(f"set {rtt_ms} ms, measured {measured_ms:.2f} ms")
    assert abs(measured_ms - rtt_ms) <= 0.10 * rtt_ms


def test_rtt_inside_a_cluster_is_under_2ms(lab: dict) -> None:
    east1, east2, _ = _nodes(lab)
    assert echo_rtt_s(east1["netns"], east2["address"]) < 0.002
    # A node's WAN address seen from its own cluster is not delayed either.
    assert echo_rtt_s(east1["netns"], east2["wan_address"]) < 0.002


@pytest.mark.parametrize("mbit", [100, 400])
def test_throughput_between_clusters_is_within_15_percent_of_the_cap(
    lab: dict, wan: None, mbit: int
) -> None:
    east1, _, west1 = _nodes(lab)
    lab_module.set_wan(None, mbit)
    rtt_s = lab["rtt_ms"] / 1000
    n_bytes = int(mbit * 1e6 / 8 * 3)  # three seconds' worth
    measured = stream_throughput_bps(east1["netns"], west1["wan_address"], n_bytes, rtt_s) / 1e6
    print(f"cap {mbit} Mbit/s at {lab['rtt_ms']} ms, measured {measured:.1f} Mbit/s")
    assert abs(measured - mbit) <= 0.15 * mbit


def test_other_clusters_lan_addresses_are_not_routed(lab: dict) -> None:
    """The WAN is the only way between clusters: no path around the delay."""
    east1, _, west1 = _nodes(lab)
    out = in_netns(
        east1["netns"],
        """
        import socket, sys
        try:
            socket.create_connection((sys.argv[1], 22), timeout=2)
            print("connected")
        except OSError as exc:
            print(type(exc).__name__)
        """,
        west1["address"],
    )
    assert out.strip() != "connected"
