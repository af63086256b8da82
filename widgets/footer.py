"""A footer whose rarely used keys fold away on a narrow terminal.

Textual's Footer shows every binding that has `show` and is cut at the terminal's edge: at 80
columns the main screen's keys ran out after "e Evac…", so `? Help` and `q Quit` never showed.
`show=False` would hide those keys on a wide terminal too, where they fit. Instead this footer
marks the keys of the actions it is given `-foldable` and the stylesheet hides them on a
`-narrow` screen; they stay bound and listed in `?` help.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer


class FoldingFooter(Footer):
    def __init__(self, foldable: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.foldable = frozenset(foldable)

    def compose(self) -> ComposeResult:
        # Footer yields one FooterKey per binding, carrying the binding's action (Textual is
        # pinned; the 80-column snapshot of the main screen shows if that ever changes).
        for key in super().compose():
            if getattr(key, "action", None) in self.foldable:
                key.add_class("-foldable")
            yield key
