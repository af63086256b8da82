"""The node scripts (backends/remote/) as a node gets them: each one program, the node modules
it uses inlined (backends/node_scripts.py), so tests exercise what is shipped."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from whimbrel.backends.node_scripts import remote_script

REMOTE = Path(__file__).parents[1] / "backends" / "remote"
# A script runs as a program (the others are node modules that scripts import).
SCRIPTS = sorted(
    p.stem for p in REMOTE.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()
)


def shipped(name: str) -> str:
    return remote_script(f"{name}.py")


def load(name: str) -> ModuleType:
    """The helper NAME as a module (its own path as __file__, as on a node)."""
    module = ModuleType(f"node_{name}")
    module.__file__ = str(REMOTE / f"{name}.py")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(shipped(name), module.__file__, "exec"), module.__dict__)
    return module


def write(name: str, folder: Path) -> Path:
    """The helper NAME written into `folder`, to run as its own process."""
    path = folder / f"{name}.py"
    path.write_text(shipped(name))
    return path
