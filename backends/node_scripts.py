"""How scripts reach a node.

A node runs a script of backends/remote/ as one program (`python3 -c TEXT`), with nothing of
whimbrel installed, so the script is shipped with the node modules it uses inlined: a top-level
`from M import ...` naming a file M.py beside the script is a node import. Each node module goes
in once, after the node modules it imports itself (dependency order), all of them in place of
the script's first node import; every other node import line is dropped, the names being already
defined. Run from a checkout by path, the same imports find the files beside the script. A
cycle, `import M` of a node module, or a module that is neither a node module nor the standard
library is refused here, never left for a node to find.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import NamedTuple


class _NodeImport(NamedTuple):
    start: int  # its first line (0-based)
    end: int  # the line after its last
    module: str


@dataclass(frozen=True)
class _NodeSource:
    lines: list[str]
    imports: list[_NodeImport]

    def text(self, first_import: str = "") -> str:
        """The text with its node imports dropped, the first replaced by `first_import`."""
        kept, at = [], 0
        for number, imported in enumerate(self.imports):
            kept += self.lines[at : imported.start]
            kept.append(first_import if number == 0 else "")
            at = imported.end
        return "".join(kept + self.lines[at:])


def _node_source(folder: Traversable, module: str, wanted_by: str) -> _NodeSource:
    path = folder.joinpath(f"{module}.py")
    if not path.is_file():
        raise ImportError(f"{wanted_by}: no node module {module!r} in backends/remote/")
    text = path.read_text()
    imports = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if folder.joinpath(f"{alias.name}.py").is_file():
                    raise ImportError(f"{module}: `import {alias.name}`: use `from ... import`")
                _stdlib_only(module, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if folder.joinpath(f"{node.module}.py").is_file():
                end = node.end_lineno or node.lineno
                imports.append(_NodeImport(node.lineno - 1, end, node.module))
            else:
                _stdlib_only(module, node.module)
    return _NodeSource(text.splitlines(keepends=True), imports)


def _stdlib_only(module: str, imported: str) -> None:
    if imported.split(".")[0] not in sys.stdlib_module_names:
        raise ImportError(
            f"{module}: {imported!r} is neither a node module nor the standard library"
        )


@functools.cache  # the console ships some every second (inventories, RTT probes)
def remote_script(name: str) -> str:
    """The node script backends/remote/NAME as the one program a node runs (`python3 -c`),
    its node modules inlined (see above)."""
    return bundle(resources.files("whimbrel.backends.remote"), name)


def bundle(folder: Traversable, name: str) -> str:
    """The script NAME of `folder` with the node modules it uses (files of `folder`) inlined."""
    script = name.removesuffix(".py")
    sources: dict[str, _NodeSource] = {}
    order: list[str] = []

    def visit(module: str, chain: tuple[str, ...]) -> None:
        if module in chain:
            raise ImportError("node modules import each other: " + " -> ".join((*chain, module)))
        if module not in sources:
            sources[module] = _node_source(folder, module, chain[-1] if chain else name)
            for imported in sources[module].imports:
                visit(imported.module, (*chain, module))
            order.append(module)

    visit(script, ())
    inlined = "".join(sources[module].text() for module in order[:-1])
    return sources[script].text(first_import=inlined)
