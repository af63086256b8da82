"""What changed in the console's state, as typed messages from the app to its open screens:
each screen handles the changes it draws, and redraws only if it is on view."""

from __future__ import annotations

from textual.message import Message


class ConsoleStateChanged(Message, bubble=False):
    """Something the screens draw changed; a screen that draws it all handles this base."""


class InventoryChanged(ConsoleStateChanged, bubble=False):
    """A node answered, or containers became busy or free with a migration."""


class ReadinessChanged(ConsoleStateChanged, bubble=False):
    """A node's doctor answered, or was asked again."""


class SelectionChanged(ConsoleStateChanged, bubble=False):
    """The watched container or its target changed."""


class RttChanged(ConsoleStateChanged, bubble=False):
    """An RTT sample of a path arrived, or its probe failed."""


class ThroughputChanged(ConsoleStateChanged, bubble=False):
    """A path's throughput was measured, or its probe failed."""


class DirtyChanged(ConsoleStateChanged, bubble=False):
    """A dirty-rate sample of a container arrived, or its sampling failed."""


class HistoryChanged(ConsoleStateChanged, bubble=False):
    """The engine's records were read again."""


class ReadOnlyChanged(ConsoleStateChanged, bubble=False):
    """Read-only was switched from the command palette."""
