"""`whimbrel probe SRC_NODE DST_NODE`: RTT and throughput of the path a migration would take."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.headless import with_pool
from whimbrel.backends.probes import (
    DEFAULT_RTT_SAMPLES,
    DEFAULT_THROUGHPUT_BYTES,
    operator_rtt,
    probe_rtt,
    probe_throughput,
)
from whimbrel.backends.ssh import SessionPool
from whimbrel.backends.units import format_size, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe", help="measure RTT and throughput from one node to another"
    )
    parser.add_argument("src", metavar="SRC_NODE")
    parser.add_argument("dst", metavar="DST_NODE")
    parser.add_argument("--samples", type=int, default=DEFAULT_RTT_SAMPLES, help="RTT samples")
    parser.add_argument(
        "--bytes",
        default=format_size(DEFAULT_THROUGHPUT_BYTES).replace(" ", ""),
        help="bytes to send for throughput (default %(default)s; 0 skips it)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    n_bytes = int(parse_size(args.bytes, "--bytes"))

    async def work(pool: SessionPool) -> dict:
        src, dst = pool.config.node(args.src), pool.config.node(args.dst)
        rtt = await probe_rtt(pool, src, dst, max(1, args.samples))
        out: dict = {
            "src": src.name,
            "dst": dst.name,
            "rtt_ms": rtt.rtt_s * 1000,
            "rtt_samples_ms": [s.rtt_s * 1000 for s in rtt.samples],
            "dst_reply_ms": rtt.reply_s * 1000,
            "operator_rtt_ms": {n.name: await operator_rtt(pool, n) * 1000 for n in (src, dst)},
            "throughput_mbit": None,
        }
        if n_bytes:
            tput = await probe_throughput(pool, src, dst, n_bytes, rtt.rtt_s)
            out |= {
                "throughput_mbit": tput.mbit_per_s,
                "throughput_bytes": tput.bytes,
                "throughput_elapsed_s": tput.elapsed_s,
                "throughput_stripes": tput.stripes,
            }
        return out

    result = with_pool(args, work)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['src']} -> {result['dst']}")
    print(f"  rtt         {result['rtt_ms']:.2f} ms (median of {len(result['rtt_samples_ms'])})")
    if result["throughput_mbit"] is not None:
        streams = result["throughput_stripes"]
        print(
            f"  throughput  {result['throughput_mbit']:.1f} Mbit/s over SSH, node to node"
            + (f" ({streams} streams)" if streams > 1 else "")
        )
    for name, ms in result["operator_rtt_ms"].items():
        print(f"  operator -> {name}: {ms:.2f} ms")
    return 0
