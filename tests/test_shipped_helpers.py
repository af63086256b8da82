"""The node helpers as shipped: each one program a node's own Python runs as it is."""

from __future__ import annotations

import ast
import sys

import pytest

from tests.node_helpers import REMOTE, shipped

HELPERS = sorted(p.stem for p in REMOTE.glob("*.py") if p.stem not in ("__init__", "nodelib"))


@pytest.mark.parametrize("name", HELPERS)
def test_each_helper_ships_as_python_3_9_using_the_standard_library_only(name: str) -> None:
    tree = ast.parse(shipped(name), feature_version=(3, 9))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    top_level = {name.split(".")[0] for name in imported if name}
    assert top_level <= set(sys.stdlib_module_names) | {"__future__"}  # nodelib went inline


def test_the_shared_code_is_inlined_once() -> None:
    for name in ("source", "receiver"):
        text = shipped(name)
        assert text.count("\ndef failpoint(") == 1, name
