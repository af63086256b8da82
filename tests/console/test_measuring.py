"""The console's probes of a path: the RTT is never taken while the path's throughput probe
fills the link (the lab's 40 ms path reads 155 ms then: the link's queue, not the path), and a
sample taken then anyway (the other way round, or in flight) is never charted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.console.fake_backend import FakeBackend
from whimbrel.app.measuring import measure_path, poll_rtt
from whimbrel.app.messages import RttMeasured, ThroughputMeasured
from whimbrel.app.observations import Observations
from whimbrel.backends.probes import RttResult, RttSample


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


class StampedNow(SlowThroughput):
    """Its RTT samples stamped when taken, as the nodes stamp them (the fake's are fixed)."""

    async def rtt(self, src: str, dst: str) -> RttResult:
        self.log.append("rtt")
        return RttResult(src, dst, 0.041, 0.0002, (RttSample(time.time(), 0.041),))


def charted(observed: Observations, pair: tuple[str, str]) -> list[float]:
    return [ms for _, ms in observed.rtt.get(pair, ())]


async def test_an_rtt_sample_taken_during_a_throughput_probe_is_not_charted() -> None:
    backend = StampedNow()
    observed = Observations(backend.config)
    observed.rtt_last[("east-1", "west-1")] = 0.04
    measuring = asyncio.create_task(measure_path(backend, observed, "east-1", "west-1", print))
    await asyncio.sleep(0.05)
    assert backend.log == ["throughput begins"]
    # The way back crosses the loaded link too; the probing lock does not hold this one up.
    observed.add_rtt(await backend.rtt("west-1", "east-1"))
    await measuring
    assert charted(observed, ("west-1", "east-1")) == []
    assert ("west-1", "east-1") not in observed.rtt_last  # nor does any plan use it


async def test_an_rtt_sample_taken_after_the_throughput_probe_is_charted() -> None:
    backend = StampedNow()
    observed = Observations(backend.config)
    observed.rtt_last[("east-1", "west-1")] = 0.04
    await measure_path(backend, observed, "east-1", "west-1", print)
    observed.add_rtt(await backend.rtt("west-1", "east-1"))
    assert charted(observed, ("west-1", "east-1")) == [41.0]
    assert observed.rtt_last[("west-1", "east-1")] == 0.041


def test_a_sample_stamped_inside_a_probe_is_left_out_even_when_it_arrives_after() -> None:
    observed = Observations(FakeBackend().config)
    with observed.loading(("east-1", "west-1")):
        during = time.time()
    after = time.time() + 1
    observed.add_rtt(
        RttResult(
            "east-1",
            "west-1",
            0.2,
            0.0002,
            (RttSample(during, 0.2), RttSample(after, 0.041), RttSample(after + 1, 0.043)),
        )
    )
    assert charted(observed, ("east-1", "west-1")) == [41.0, 43.0]
    assert observed.rtt_last[("east-1", "west-1")] == pytest.approx(0.042)  # the kept ones' median
