"""Typed messages: how workers hand results to the app. Workers never touch a widget."""

from __future__ import annotations

from textual.message import Message

from whimbrel.app.history_records import HistoryRecord
from whimbrel.app.observations import ProbeKind
from whimbrel.app.planning import DirtyRate
from whimbrel.backends.doctor import NodeReport
from whimbrel.backends.evacuation import EvacuationEvent
from whimbrel.backends.events import MigrationEvent
from whimbrel.backends.inventory import NodeInventory
from whimbrel.backends.probes import RttResult, ThroughputResult


class NodeInventoryLoaded(Message):
    """One node answered (or was found unreachable): its containers."""

    def __init__(self, inventory: NodeInventory) -> None:
        super().__init__()
        self.inventory = inventory


class NodeExamined(Message):
    """A node's doctor answered: every readiness check, passed or failed."""

    def __init__(self, report: NodeReport) -> None:
        super().__init__()
        self.report = report


class RttMeasured(Message):
    def __init__(self, result: RttResult) -> None:
        super().__init__()
        self.result = result


class ThroughputMeasured(Message):
    def __init__(self, result: ThroughputResult) -> None:
        super().__init__()
        self.result = result


class ProbeFailed(Message):
    """An RTT or throughput probe from src to dst failed."""

    def __init__(self, kind: ProbeKind, src: str, dst: str, error: str) -> None:
        super().__init__()
        self.kind = kind
        self.src = src
        self.dst = dst
        self.error = error


class DirtySampled(Message):
    def __init__(self, ref: str, sample: DirtyRate) -> None:
        super().__init__()
        self.ref = ref
        self.sample = sample


class DirtyFailed(Message):
    def __init__(self, ref: str, error: str) -> None:
        super().__init__()
        self.ref = ref
        self.error = error


class MigrationProgress(Message):
    """An engine event of the migration the progress screen follows."""

    def __init__(self, event: MigrationEvent) -> None:
        super().__init__()
        self.event = event


class EvacuationProgress(Message):
    """An evacuation's event: a migration started, one's engine event, or the end of all."""

    def __init__(self, item: EvacuationEvent) -> None:
        super().__init__()
        self.item = item


class HistoryLoaded(Message):
    def __init__(self, records: list[HistoryRecord], error: str | None = None) -> None:
        super().__init__()
        self.records = records
        self.error = error


class Recovered(Message):
    """Migrations an earlier whimbrel left unfinished, settled at start: what happened to each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines
