"""A migration the operator confirmed, as the console hands it to the backend."""

from __future__ import annotations

from dataclasses import dataclass

from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.model import Plan


@dataclass(frozen=True)
class MigrationOrder:
    """One migration the operator confirmed."""

    container: ContainerInfo
    target: str  # node name
    downtime_target_s: float
    plan: Plan | None = None  # the prediction shown when it was confirmed
    lazy_restore: bool = False
