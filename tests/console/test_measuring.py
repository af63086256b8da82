"""The console's probes of a path: the RTT is never taken while the path's throughput probe
fills the link (the lab's 40 ms path reads 155 ms then: the link's queue, not the path)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.console.fake_backend import FakeBackend
from whimbrel.app.measuring import measure_path, poll_rtt
from whimbrel.app.messages import RttMeasured, ThroughputMeasured
from whimbrel.app.observations import Observations


class SlowThroughput(FakeBackend):
    """The fake backend, its throughput probe taking a while and every probe logged."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def rtt(self, src: str, dst: str) -> Any:
        self.log.append("rtt")
        return await super().rtt(src, dst)

    async def throughput(self, src: str, dst: str, rtt_s: float) -> Any:
        self.log.append("throughput begins")
        await asyncio.sleep(0.2)
        self.log.append("throughput ends")
        return await super().throughput(src, dst, rtt_s)


async def test_an_rtt_poll_waits_while_the_paths_throughput_is_measured() -> None:
    backend = SlowThroughput()
    observed = Observations(backend.config)
    posted: list[object] = []
    observed.rtt_last[("east-1", "west-1")] = 0.04  # measured before: the throughput goes first
    measuring = asyncio.create_task(
        measure_path(backend, observed, "east-1", "west-1", posted.append)
    )
    await asyncio.sleep(0.05)
    polling = asyncio.create_task(
        poll_rtt(backend, observed, "east-1", "west-1", 0.01, posted.append)
    )
    await measuring
    await asyncio.sleep(0.05)
    polling.cancel()
    assert backend.log[:3] == ["throughput begins", "throughput ends", "rtt"]
    assert any(isinstance(m, ThroughputMeasured) for m in posted)
    assert any(isinstance(m, RttMeasured) for m in posted)


async def test_another_paths_rtt_is_not_held_up() -> None:
    backend = SlowThroughput()
    observed = Observations(backend.config)
    observed.rtt_last[("east-1", "west-1")] = 0.04
    measuring = asyncio.create_task(measure_path(backend, observed, "east-1", "west-1", print))
    await asyncio.sleep(0.05)
    polling = asyncio.create_task(poll_rtt(backend, observed, "east-1", "west-2", 1, print))
    await asyncio.sleep(0.05)
    assert backend.log == ["throughput begins", "rtt"]
    polling.cancel()
    await measuring
