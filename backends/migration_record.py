"""A migration's history record as the engine builds it: typed here, written as the JSON object
history.py stores (read back as JSON by `recover`, `whimbrel history` and the benchmarks, so
its keys, their order and their meaning are its interface). Each part is set as the migration
reaches it; what is not reached yet is not written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from whimbrel.backends import model
from whimbrel.backends.events import MigrationFinished, event_json


@dataclass(frozen=True)
class Subject:
    """What moves where."""

    container: str  # NODE/NAME
    container_id: str
    src: str
    dst: str


@dataclass
class LinkRecord:
    """The node-to-node link, for `recover` to revoke."""

    id: str
    src_dir: str
    dst_dir: str
    stripes: int | None = None  # once the RTT is measured

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "src_dir": self.src_dir, "dst_dir": self.dst_dir}
        if self.stripes is not None:
            out["stripes"] = self.stripes
        return out


@dataclass(frozen=True)
class RoundRecord:
    """One round's raw measurements, for calibration (`whimbrel bench`)."""

    bytes: float  # sent
    transfer_s: float
    seconds: float  # the round (the final one: the downtime)
    throughput: float  # the link's, as preflight probed it
    rtt: float
    final: bool
    dump_s: float
    dumped_bytes: float
    stripes: int | None
    restore_s: float | None = None  # the final round's only
    lazy: bool = False  # the final round restored lazily (its restore does not grow with M)
    # Of transfer_s, the wait for the round's sessions (round 0 opens them while it dumps)
    sessions_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "bytes": self.bytes,
            "transfer_s": self.transfer_s,
            "seconds": self.seconds,
            "throughput": self.throughput,
            "rtt": self.rtt,
            "final": self.final,
            "dump_s": self.dump_s,
            "dumped_bytes": self.dumped_bytes,
        }
        if self.restore_s is not None:
            out["restore_s"] = self.restore_s
        if self.lazy:
            out["lazy"] = True
        if self.sessions_s is not None:
            out["sessions_s"] = self.sessions_s
        return out | {"stripes": self.stripes}


@dataclass(frozen=True)
class Ending:
    """How the migration ended, as the record keeps it."""

    finished: MigrationFinished
    status: str  # done, failed, or pending (for `recover`)
    pending_for: str | None  # handover or cleanup, while pending
    warnings: list[str]
    handover_result: dict[str, Any] | None  # the source daemon's own account
    events: list[dict[str, Any]]  # every event, as `migrate --json` prints them


@dataclass(frozen=True)
class Timing:
    """The migration proper (what the model's total time predicts) against its preflight,
    and the rounds as last re-planned."""

    preflight_s: float
    rounds_s: float
    rounds: int
    replanned_downtime_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "timing": {"preflight_s": self.preflight_s, "rounds_s": self.rounds_s},
            "last_plan": {"rounds": self.rounds, "downtime_s": self.replanned_downtime_s},
        }


@dataclass
class MigrationRecord:
    id: str
    started_at: float
    owner: dict[str, Any]  # the process running it (recovery.this_process)
    subject: Subject | None = None  # from here on the record is pending until it ends
    mode: str | None = None  # as requested, then as planned
    hook_names: tuple[str, ...] = ()  # the config's hooks it runs, for `recover` to finish
    link: LinkRecord | None = None
    target_id: str | None = None
    policy: str | None = None
    inputs: model.ModelInputs | None = None  # as preflight measured them
    plan: model.Plan | None = None  # the plan before the rounds
    measured_rounds: list[RoundRecord] = field(default_factory=list)  # written with the plan
    handover: bool = False  # fired: the source's daemon has it
    timing: Timing | None = None
    ending: Ending | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as written, its keys in the order the migration reached them."""
        out: dict[str, Any] = {"id": self.id, "started_at": self.started_at, "owner": self.owner}
        if self.subject:
            s = self.subject
            out |= {
                "container": s.container,
                "container_id": s.container_id,
                "src": s.src,
                "dst": s.dst,
                "status": "pending",
                "mode": self.mode,
            }
            if self.hook_names:
                out["hook_names"] = list(self.hook_names)
        if self.link:
            out["link"] = self.link.to_json()
        if self.target_id:
            out["target_id"] = self.target_id
        if self.plan and self.inputs:
            out |= {
                "mode": self.mode,
                "policy": self.policy,
                "inputs": self.inputs.__dict__,
                "plan": self.plan.to_json(),
                "measured_rounds": [r.to_json() for r in self.measured_rounds],
            }
        if self.handover:
            out["handover"] = True
        if self.timing:
            out |= self.timing.to_json()
        if self.ending:
            e = self.ending
            out |= event_json(e.finished) | {
                "status": e.status,
                "pending_for": e.pending_for,
                "warnings": e.warnings,
                "handover_result": e.handover_result,
                "events": e.events,
            }
        return out
