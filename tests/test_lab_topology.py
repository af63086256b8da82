"""The lab's layout is computed, not stored: names and addresses follow from the node spec."""

from __future__ import annotations

import ipaddress

import pytest

from whimbrel.backends.errors import UsageError
from whimbrel.backends.lab.topology import build_topology, parse_nodes_spec

BENCHMARK_RANGE = ipaddress.ip_network("198.18.0.0/15")


def test_default_lab_has_two_clusters_of_two_nodes_in_the_benchmark_range() -> None:
    topo = build_topology()
    assert [n.name for n in topo.nodes] == ["east-1", "east-2", "west-1", "west-2"]
    for node in topo.nodes:
        assert ipaddress.ip_address(node.lan_address) in BENCHMARK_RANGE
        assert ipaddress.ip_address(node.wan_address) in BENCHMARK_RANGE
        assert len(node.host_veth) <= 15  # Linux interface names
    addresses = [n.lan_address for n in topo.nodes] + [n.wan_address for n in topo.nodes]
    assert len(set(addresses)) == len(addresses)


def test_nodes_spec_changes_the_clusters() -> None:
    topo = build_topology(parse_nodes_spec("a=1,b=3,c=2"))
    assert [(c.name, len(c.nodes)) for c in topo.clusters] == [("a", 1), ("b", 3), ("c", 2)]
    assert topo.node("b-3").cluster == "b"


@pytest.mark.parametrize("spec", ["east", "east=0", "East=2", "east=2,east=1", "e;x=1", "east=x"])
def test_bad_nodes_spec_is_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="--nodes"):
        parse_nodes_spec(spec)
