"""The lab's emulated WAN: a delaying, rate-limiting TCP relay between clusters.

The kernels here have no netem, so latency is added in user space. Every node's `wan_address`
is a local address of the relay; a connection to it is forwarded to the node's LAN address.
When the caller is in another cluster the relay behaves like a long link:

- connection set-up waits one one-way delay before the upstream connect, and every chunk is
  delivered one one-way delay after it was read, in both directions; so an SSH banner arrives
  one RTT after the connect (the relay itself answers the TCP handshake at once, which is why
  RTT is measured at the application level);
- each direction between two clusters is one link with a bandwidth cap shared by all its
  connections (chunks leave the link back to back at the set rate);
- what a connection may have in flight is bounded by the link's bandwidth-delay product plus a
  little, as a TCP window would, so a sender cannot queue unboundedly in the relay.

Callers from the same cluster, and the operator's host, are relayed without delay or cap.
The relay reads its settings from the lab's state file and re-reads it on SIGHUP, so
`whimbrel lab wan` changes a running lab. Run: python -m whimbrel.backends.lab.wan STATE_FILE
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import selectors
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("whimbrel.wan")

CHUNK = 256 * 1024
# Beyond the bandwidth-delay product a connection may queue this much in the relay.
EXTRA_IN_FLIGHT = 1024 * 1024
# How late a timed wake-up comes depends on the machine and its load (0.33 ms here for sleeps
# of 10-50 ms with select; whole milliseconds where timers are coarse or the CPU is shared), so
# the relay learns it as it goes and wakes that much early, which centres the emulated delay on
# the set value anywhere (a fixed 0.4 ms left a CI machine's probes 10% above the set RTT).
FIRST_LATENESS_S = 0.0004
LATENESS_WEIGHT = 0.1


@dataclass
class WanSettings:
    rtt_s: float
    bandwidth_Bps: float


@dataclass(frozen=True)
class Route:
    """One relayed address: who listens where, and the node and cluster behind it."""

    listen: str
    port: int
    upstream: str
    cluster: str


class Link:
    """One direction between two clusters: a serial line with a rate and a one-way delay."""

    def __init__(self, settings: WanSettings) -> None:
        self.settings = settings
        self.free_at = 0.0

    @property
    def one_way_s(self) -> float:
        return self.settings.rtt_s / 2

    def window(self) -> int:
        return int(self.settings.bandwidth_Bps * self.settings.rtt_s) + EXTRA_IN_FLIGHT

    def schedule(self, now: float, n_bytes: int) -> float:
        """Time at which n_bytes read now arrive at the far end."""
        start = max(now, self.free_at)
        self.free_at = start + n_bytes / self.settings.bandwidth_Bps
        return self.free_at + self.one_way_s


class Waker:
    """Sleeps until a deadline on the event loop's clock, waking as early as wake-ups come late."""

    def __init__(self) -> None:
        self.lateness_s = FIRST_LATENESS_S

    async def sleep_until(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        wake_at = due - self.lateness_s
        if wake_at <= loop.time():
            return
        await asyncio.sleep(wake_at - loop.time())
        late = loop.time() - wake_at
        self.lateness_s += LATENESS_WEIGHT * (late - self.lateness_s)

    async def calibrate(self, samples: int = 20) -> None:
        for _ in range(samples):
            await self.sleep_until(asyncio.get_running_loop().time() + 0.01)
        log.info("timed wake-ups come %.2f ms late here", self.lateness_s * 1000)


class Relay:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.settings = WanSettings(0.0, 1e12)
        self.routes: list[Route] = []
        self.clusters_by_net: list[tuple[ipaddress.IPv4Network, str]] = []
        self.links: dict[tuple[str, str], Link] = {}
        self.servers: list[asyncio.Server] = []
        self.waker = Waker()

    def load(self) -> None:
        state = json.loads(self.state_file.read_text())
        self.settings.rtt_s = state["rtt_ms"] / 1000.0
        self.settings.bandwidth_Bps = state["bandwidth_mbit"] * 1e6 / 8
        self.routes = [Route(**r) for r in state["wan_routes"]]
        self.clusters_by_net = [
            (ipaddress.ip_network(net), name) for name, net in state["cluster_subnets"].items()
        ]
        log.info("settings: rtt %.1f ms, %.1f Mbit/s", state["rtt_ms"], state["bandwidth_mbit"])

    def cluster_of(self, host: str) -> str | None:
        addr = ipaddress.ip_address(host)
        for net, name in self.clusters_by_net:
            if addr in net:
                return name
        return None

    def link(self, src: str, dst: str) -> Link:
        # Links share the settings object, so a reload applies to every link at once.
        return self.links.setdefault((src, dst), Link(self.settings))

    async def start(self) -> None:
        self.load()
        await self.waker.calibrate()
        for route in self.routes:
            server = await asyncio.start_server(
                lambda r, w, route=route: self.handle(route, r, w),
                host=route.listen,
                port=route.port,
                reuse_address=True,
                limit=CHUNK,
            )
            self.servers.append(server)
        log.info("relaying %d addresses", len(self.routes))

    async def handle(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")[0]
        src_cluster = self.cluster_of(peer)
        wan = src_cluster is not None and src_cluster != route.cluster
        out_link = self.link(src_cluster, route.cluster) if wan else None
        back_link = self.link(route.cluster, src_cluster) if wan else None
        try:
            if out_link is not None:
                loop = asyncio.get_running_loop()
                await self.waker.sleep_until(loop.time() + out_link.one_way_s)
            up_reader, up_writer = await asyncio.open_connection(
                route.upstream, route.port, limit=CHUNK
            )
        except OSError as exc:
            log.info("upstream %s:%d: %s", route.upstream, route.port, exc)
            writer.close()
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            pump(reader, up_writer, out_link, self.waker),
            pump(up_reader, writer, back_link, self.waker),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.close()


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link | None, waker: Waker
) -> None:
    """Copy one direction; through `link` each chunk arrives when the link would deliver it."""
    loop = asyncio.get_running_loop()
    if link is None:
        try:
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.close()
        return

    # (arrival time, chunk); an empty chunk is the FIN, which crosses the link like data.
    queue: deque[tuple[float, bytes]] = deque()
    in_flight = 0
    have_data = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def deliver() -> None:
        nonlocal in_flight
        while True:
            while not queue:
                have_data.clear()
                await have_data.wait()
            due, chunk = queue.popleft()
            await waker.sleep_until(due)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
            in_flight -= len(chunk)
            if in_flight < link.window():
                room.set()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            await room.wait()
            chunk = await reader.read(CHUNK)
            queue.append((link.schedule(loop.time(), len(chunk)), chunk))
            have_data.set()
            if not chunk:
                break
            in_flight += len(chunk)
            if in_flight >= link.window():
                room.clear()
        await sender
    except (ConnectionError, OSError):
        writer.close()
    finally:
        sender.cancel()


async def serve(state_file: Path) -> None:
    relay = Relay(state_file)
    await relay.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, relay.load)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # select() sleeps to the microsecond; epoll and poll round timeouts up to whole
    # milliseconds, which would add up to a millisecond to every emulated delay.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    loop.run_until_complete(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
