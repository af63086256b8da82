"""Evacuation: every container of a node (or a cluster) moved to other nodes, several at once
within the link. survey (what the plan needs, measured), plan (placement, the shared link,
the order and the concurrency; pure), run (the migrations, their events merged)."""

from whimbrel.backends.evacuation.plan import (
    MAX_AUTO_CONCURRENCY,
    MAX_CONCURRENCY,
    Destination,
    EvacuationPlan,
    Leaving,
    Move,
    Placement,
    Route,
    Stay,
    place,
    plan_evacuation,
)
from whimbrel.backends.evacuation.run import (
    Evacuation,
    EvacuationEvent,
    EvacuationFinished,
    MoveEvent,
    MoveResult,
    MoveStarted,
)
from whimbrel.backends.evacuation.survey import Survey, measure_routes, nodes_named, survey

__all__ = [
    "MAX_AUTO_CONCURRENCY",
    "MAX_CONCURRENCY",
    "Destination",
    "Evacuation",
    "EvacuationEvent",
    "EvacuationFinished",
    "EvacuationPlan",
    "Leaving",
    "Move",
    "MoveEvent",
    "MoveResult",
    "MoveStarted",
    "Placement",
    "Route",
    "Stay",
    "Survey",
    "measure_routes",
    "nodes_named",
    "place",
    "plan_evacuation",
    "survey",
]
