"""Every container on every cluster, updated in place: cells change, the cursor stays put.

Rows are keyed by NODE/NAME. `show(rows)` adds what is new, updates only the cells whose
value changed, removes what is gone, and keeps the cursor on the same container (lazydocker
and memray's TUI do the same; clearing the table would flicker and lose the cursor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from whimbrel.backends.units import format_size

MARK = "●"


@dataclass(frozen=True)
class ContainerRow:
    ref: str  # NODE/NAME, the row key
    name: str
    node: str
    cluster: str
    state: str
    image: str
    memory_bytes: int | None
    dirty_rate: float | None  # bytes/s, measured for containers that were selected
    marked: bool = False
    busy: str | None = None  # e.g. "migrating", shown instead of the state


@dataclass(frozen=True)
class Cell:
    """A cell that sorts by its value, not by its text."""

    text: str
    sort_key: Any
    style: str = ""

    def __rich__(self) -> Text:
        return Text(self.text, style=self.style, no_wrap=True, overflow="ellipsis")


# (key, header); the order of the columns. What a migration is decided on (memory, dirty rate)
# comes before the image, the longest and least telling value: on a narrow terminal the image
# is what runs off the right edge (the table scrolls to it), never the numbers.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "),
    ("name", "NAME"),
    ("node", "NODE"),
    ("cluster", "CLUSTER"),
    ("state", "STATE"),
    ("memory", "MEMORY"),
    ("dirty", "DIRTY RATE"),
    ("image", "IMAGE"),
)
SORTABLE = tuple(key for key, _ in COLUMNS if key != "mark")


def _cells(row: ContainerRow, colours: Mapping[str, str]) -> dict[str, Cell]:
    state_style = {
        "running": colours.get("success", ""),
        "exited": colours.get("error", ""),
        "dead": colours.get("error", ""),
    }.get(row.state, colours.get("warning", ""))
    if row.busy:
        state_style = colours.get("accent", "")
    state = Cell(row.busy or row.state, row.busy or row.state, state_style)
    memory = row.memory_bytes
    dirty = row.dirty_rate
    return {
        "mark": Cell(MARK if row.marked else " ", not row.marked, colours.get("accent", "")),
        "name": Cell(row.name, row.name, "bold"),
        "node": Cell(row.node, row.node),
        "cluster": Cell(row.cluster, row.cluster),
        "state": state,
        "image": Cell(row.image, row.image),
        "memory": Cell(format_size(memory) if memory is not None else "-", memory or -1),
        "dirty": Cell(f"{format_size(dirty)}/s" if dirty is not None else "-", dirty or -1),
    }


def _width(change: tuple[str, str, Cell]) -> int:
    return cell_len(change[2].text)


class ContainerTable(DataTable[Cell]):
    """The container table. Filter with `set_filter`, sort with `sort_on`, feed with `show`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort", id="table.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="table.reverse"),
    ]

    class CurrentChanged(Message):
        """The container under the cursor changed (None: the table is empty)."""

        def __init__(self, ref: str | None) -> None:
            super().__init__()
            self.ref = ref

    class SortChanged(Message):
        """The rows are sorted otherwise (sort_column, sort_reverse): the screen's titles say it."""

    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._colours = colours
        self._rows: dict[str, ContainerRow] = {}
        self._shown: dict[str, dict[str, Cell]] = {}
        self._filter = ""
        self.sort_column: str | None = "name"
        self.sort_reverse = False
        self._current: str | None = None

    def on_mount(self) -> None:
        for key, header in COLUMNS:
            self.add_column(header, key=key)

    @property
    def current_ref(self) -> str | None:
        return self._current

    @property
    def visible_refs(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def show(self, rows: Sequence[ContainerRow]) -> None:
        self._rows = {r.ref: r for r in rows}
        self._sync()

    def set_filter(self, text: str) -> None:
        self._filter = text.strip().lower()
        self._sync()

    def sort_on(self, column: str, reverse: bool | None = None) -> None:
        if column not in SORTABLE:
            return
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column, self.sort_reverse = column, reverse
        self._sync(resort=True)
        self.post_message(self.SortChanged())

    def move_to(self, ref: str) -> bool:
        """Put the cursor on a container; False when it is not shown."""
        if ref not in self._shown:
            return False
        self.move_cursor(row=self.get_row_index(ref), animate=False)
        return True

    def action_cycle_sort(self) -> None:
        index = SORTABLE.index(self.sort_column) if self.sort_column in SORTABLE else -1
        self.sort_on(SORTABLE[(index + 1) % len(SORTABLE)], reverse=False)
        self.app.notify(f"sorted by {self.sort_column}", timeout=2)

    def action_reverse_sort(self) -> None:
        self.sort_on(self.sort_column or "name", reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_on(str(event.column_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # The cursor as it is now: the event may be stale after rows moved under it.
        self._set_current(self._ref_at_cursor())

    def _matches(self, row: ContainerRow) -> bool:
        if not self._filter:
            return True
        haystack = f"{row.name} {row.node} {row.cluster} {row.state} {row.image}".lower()
        return all(word in haystack for word in self._filter.split())

    def _sync(self, resort: bool = False) -> None:
        """Make the table show the filtered rows, touching only what changed."""
        keep = self._ref_at_cursor()  # before rows move: the container the operator is on
        colours = self._colours()
        wanted = {
            ref: _cells(row, colours) for ref, row in self._rows.items() if self._matches(row)
        }
        for ref in [r for r in self._shown if r not in wanted]:
            self.remove_row(ref)
            del self._shown[ref]
        changed: list[tuple[str, str, Cell]] = []
        for ref, cells in wanted.items():
            old = self._shown.get(ref)
            if old is None:
                self.add_row(*(cells[k] for k, _ in COLUMNS), key=ref)
                resort = True
            else:
                changed += [(ref, key, cell) for key, cell in cells.items() if old[key] != cell]
            self._shown[ref] = cells
        # DataTable measures every cell of a column again for each cell updated narrower than
        # the column: at 200 rows, whose memory figures move at every answer, 200 measures a
        # figure. Only each column's widest new cell asks for it: either it is at least as
        # wide as the column was (no other cell grew past it: the column takes its width), or
        # the one measure of the whole column covers the others.
        widest = {key: (ref, cell) for ref, key, cell in sorted(changed, key=_width)}
        for ref, key, cell in changed:
            self.update_cell(ref, key, cell, update_width=widest[key] == (ref, cell))
            resort = resort or key == self.sort_column
        if resort and self.sort_column:
            self.sort(self.sort_column, key=lambda cell: cell.sort_key, reverse=self.sort_reverse)
        if keep in self._shown:
            self.move_cursor(row=self.get_row_index(keep), animate=False)
        self._set_current(self._ref_at_cursor())

    def _ref_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return str(row_key.value)

    def _set_current(self, ref: str | None) -> None:
        if ref != self._current:
            self._current = ref
            self.post_message(self.CurrentChanged(ref))
