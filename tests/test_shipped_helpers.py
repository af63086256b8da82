"""The node scripts as shipped: each one program a node's own Python runs as it is, the node
modules it uses inlined (backends/node_scripts.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.node_helpers import REMOTE, SCRIPTS, shipped
from whimbrel.backends.node_scripts import bundle

NODE_MODULES = sorted(p.stem for p in REMOTE.glob("*.py") if p.stem != "__init__")


def _imports(tree: ast.Module) -> set[str]:
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return {name.split(".")[0] for name in imported if name}


def _node_imports(name: str) -> set[str]:
    """The node modules NAME imports itself, and those they import."""
    found: set[str] = set()
    todo = [name]
    while todo:
        tree = ast.parse((REMOTE / f"{todo.pop()}.py").read_text())
        for module in _imports(tree) & set(NODE_MODULES) - found:
            found.add(module)
            todo.append(module)
    return found


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_ships_as_python_3_9_using_the_standard_library_only(name: str) -> None:
    tree = ast.parse(shipped(name), feature_version=(3, 9))
    assert _imports(tree) <= set(sys.stdlib_module_names) | {"__future__"}  # node modules inline


def _top_level_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_node_module_a_script_uses_is_inlined_exactly_once(name: str) -> None:
    defined = _top_level_names(ast.parse(shipped(name)))
    for module in _node_imports(name):
        for own in _top_level_names(ast.parse((REMOTE / f"{module}.py").read_text())):
            assert defined.count(own) == 1, (name, module, own)
    # One namespace on the node: no two modules may define the same name.
    assert len(defined) == len(set(defined)), name


def test_no_node_module_shadows_the_standard_library() -> None:
    # Run from a checkout, the script's dir comes first on sys.path.
    assert not set(NODE_MODULES) & set(sys.stdlib_module_names)


def test_the_shared_code_is_inlined_once() -> None:
    for name in ("source", "receiver"):
        text = shipped(name)
        assert text.count("\ndef failpoint(") == 1, name


def _folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def test_modules_are_inlined_in_dependency_order_in_place_of_the_first_import(
    tmp_path: Path,
) -> None:
    folder = _folder(
        tmp_path,
        main='"""doc"""\nimport os\nfrom b import B\nfrom a import (\n    A,\n)\nMAIN = A + B\n',
        a="from b import B\nA = B + 1\n",
        b="import json\nB = 1\n",
    )
    text = bundle(folder, "main.py")
    assert text == '"""doc"""\nimport os\nimport json\nB = 1\nA = B + 1\nMAIN = A + B\n'


def test_a_cycle_of_node_modules_is_refused(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path, main="from a import A\n", a="from b import B\n", b="from a import A\n"
    )
    with pytest.raises(ImportError, match="main -> a -> b -> a"):
        bundle(folder, "main.py")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("from numpy import array\n", "neither a node module nor the standard library"),
        ("import a\n", "use `from ... import`"),
    ],
)
def test_an_import_no_node_can_satisfy_is_refused(tmp_path: Path, text: str, said: str) -> None:
    folder = _folder(tmp_path, main=text, a="A = 1\n")
    with pytest.raises(ImportError, match=said):
        bundle(folder, "main.py")
