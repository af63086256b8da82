"""A Static redrawn often with content that rarely changes shape.

Static.update reflows the whole screen (its height may have changed): twice a second on a
preview whose plan follows each sample, that reflow was most of the console's idle CPU. This
one renders the new content at its width first: the same lines are not drawn again, and the
screen is reflowed only when the number of lines changed."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.segment import Segment
from textual.widgets import Static


class SteadyStatic(Static):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lines: list[list[Segment]] | None = None

    def show(self, content: RenderableType) -> None:
        width = self.content_size.width
        if not width:  # not laid out yet: its first layout measures it
            self._lines = None
            self.update(content)
            return
        console = self.app.console
        lines = console.render_lines(content, console.options.update_width(width), pad=False)
        if lines == self._lines:
            return
        reflow = self._lines is None or len(lines) != len(self._lines)
        self._lines = lines
        self.update(content, layout=reflow)
