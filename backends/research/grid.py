"""The benchmark's grid: the link and workload settings `whimbrel bench` migrates at, and the
order the policies run in at each."""

from __future__ import annotations

from dataclasses import dataclass

from whimbrel.backends.model import POLICIES

# The dirty rate, as a share of the link's bandwidth.
DIRTY_SHARES = {"low": 0.02, "medium": 0.1, "high": 0.3}
REDIS_MIB = 256
ALL_POLICIES: tuple[str, ...] = tuple(POLICIES)


@dataclass(frozen=True)
class Point:
    rtt_ms: float
    bandwidth_mbit: float
    workload: str  # memwriter, or redis (its values keyed), redis-same or redis-random
    size_mib: int
    dirty: str | None = None  # low, medium, high (memwriter)

    @property
    def key(self) -> str:
        return (
            f"{self.workload}/{self.size_mib}MiB/{self.dirty or '-'}@{self.rtt_ms:g}ms/"
            f"{self.bandwidth_mbit:g}Mbit"
        )

    @property
    def dirty_rate(self) -> float:
        return DIRTY_SHARES[self.dirty] * self.bandwidth_mbit * 1e6 / 8 if self.dirty else 0.0


def full_grid() -> list[Point]:
    """Cheapest first, so a grid cut short holds whole RTT series: 64 MiB, 256 MiB, redis,
    then 1 GiB (a round 0 of 1 GiB alone takes 86 s at 100 Mbit/s)."""
    memwriter = [
        Point(rtt, bw, "memwriter", size, dirty)
        for size in (64, 256, 1024)
        for bw in (400, 100)
        for rtt in (5, 20, 50, 100, 200)
        for dirty in DIRTY_SHARES
    ]
    redis = [
        Point(rtt, bw, "redis", REDIS_MIB) for bw in (400, 100) for rtt in (5, 20, 50, 100, 200)
    ]
    return (
        [p for p in memwriter if p.size_mib < 1024]
        + redis
        + [p for p in memwriter if p.size_mib == 1024]
    )


def quick_grid() -> list[Point]:
    """A few minutes: two RTTs, a small busy memwriter, every policy."""
    return [
        Point(rtt, 200, "memwriter", 64, dirty) for rtt in (20, 100) for dirty in ("low", "high")
    ]


def run_order(policies: tuple[str, ...], repeat: int) -> list[str]:
    """The policies in the order a repeat runs them: rotated by two a repeat, so no policy is
    always the first to move a freshly started container (repeat 0 runs them as given)."""
    shift = 2 * repeat % len(policies)
    return list(policies[shift:] + policies[:shift])
