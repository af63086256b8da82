"""The layers of the house, read from the source with ast (nothing is imported):

1. app/ has no import cycle, counting imports inside functions too: the console imports its
   screens, the screens import a shared base and each other, never the console at run time.
2. A lower layer never imports a higher one: backends import neither app, widgets nor Textual;
   widgets never import app, nor anything that leads to an SSH connection.

Imports under `if TYPE_CHECKING:` never run: they are left out of the run-time graph (1), and
counted for the layers (2), where even a type-only import of a higher layer is a wrong turn.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The installed package maps each top-level folder to a subpackage of `whimbrel`.
FOLDERS = ("app", "widgets", "backends", "themes")

Graph = dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("whimbrel", *parts))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions included)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), type_checking)
        else:
            yield from _imports(node, type_checking)


def import_graph(type_checking: bool) -> Graph:
    """Module -> the modules it imports (ours by full name, third-party by top-level name)."""
    files = {_module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
    graph: Graph = {}
    for module, path in files.items():
        edges = graph.setdefault(module, set())
        for node in _imports(ast.parse(path.read_text(), str(path)), type_checking):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert node.level == 0 and node.module, f"{path}: relative import"
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod.
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in files
                    else node.module
                    for alias in node.names
                ]
            for target in targets:
                if target.startswith("whimbrel."):
                    edges.add(target)
                    # Importing a submodule runs its package's __init__ first.
                    package = target.rpartition(".")[0]
                    while package.count(".") >= 1:
                        edges.add(package)
                        package = package.rpartition(".")[0]
                else:
                    edges.add(target.partition(".")[0])
        edges.discard(module)
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _within(graph: Graph, prefix: str) -> Graph:
    return {
        m: {t for t in ts if t.startswith(prefix)}
        for m, ts in graph.items()
        if m.startswith(prefix)
    }


def test_the_graph_finds_the_edges_it_should() -> None:
    graph = import_graph(type_checking=False)
    assert "whimbrel.app.screens.main" in graph["whimbrel.app.console"]  # at the top
    assert "whimbrel.app.launch" in graph["whimbrel.app.cli"]  # inside main()
    assert "whimbrel.app.screens" in graph["whimbrel.app.screens.main"]  # its package
    assert "textual" in graph["whimbrel.widgets.charts"]
    assert "asyncssh" in graph["whimbrel.backends.ssh"]
    # Type-only imports are not run-time edges, but the layers see them.
    assert "whimbrel.app.console" not in graph["whimbrel.app.screens.base"]
    assert "whimbrel.app.console" in import_graph(type_checking=True)["whimbrel.app.screens.base"]
    assert sum(map(len, _within(graph, "whimbrel.app.").values())) > 50


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_app_has_no_import_cycle() -> None:
    cycle = find_cycle(_within(import_graph(type_checking=False), "whimbrel.app"))
    assert cycle is None, " -> ".join(cycle or ())


def _wrong_turns(graph: Graph, layer: str, higher: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.startswith(layer)
        for target in targets
        if any(target == h or target.startswith(f"{h}.") for h in higher)
    )


def test_backends_never_import_app_widgets_or_textual() -> None:
    graph = import_graph(type_checking=True)
    assert (
        _wrong_turns(graph, "whimbrel.backends", ("whimbrel.app", "whimbrel.widgets", "textual"))
        == []
    )


def test_widgets_never_import_app() -> None:
    graph = import_graph(type_checking=True)
    assert _wrong_turns(graph, "whimbrel.widgets", ("whimbrel.app",)) == []


def reachable(graph: Graph, start: str) -> set[str]:
    """Every module `start` loads, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_widgets_never_lead_to_a_connection() -> None:
    graph = import_graph(type_checking=True)
    assert "asyncssh" in reachable(graph, "whimbrel.app.backend")  # the check can see one
    widgets = [m for m in graph if m.startswith("whimbrel.widgets.")]
    assert len(widgets) >= 5
    assert [w for w in widgets if "asyncssh" in reachable(graph, w)] == []


def test_a_wrong_turn_is_seen() -> None:
    graph = {
        "whimbrel.widgets.x": {"whimbrel.app.console", "textual"},
        "whimbrel.app.y": {"textual"},
    }
    assert _wrong_turns(graph, "whimbrel.widgets", ("whimbrel.app",)) == [
        "whimbrel.widgets.x imports whimbrel.app.console"
    ]
