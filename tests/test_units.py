"""Quantities as operators type them."""

from __future__ import annotations

import pytest

from whimbrel.backends.units import (
    UnitError,
    format_bandwidth,
    format_duration,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("512MiB", 512 * 2**20), ("1.5GB", 1.5e9), ("4096", 4096), ("2 KiB", 2048), ("64kB", 64e3)],
)
def test_sizes_read_binary_and_decimal_units(text: str, value: float) -> None:
    assert parse_size(text) == value


def test_rates_need_a_per_second_unit() -> None:
    assert parse_rate("8MiB/s") == 8 * 2**20
    with pytest.raises(UnitError, match="per-second"):
        parse_rate("8MiB")


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [("200Mbit", 25e6), ("1Gbit/s", 125e6), ("100Mbps", 12.5e6), ("512Kbit", 64e3)],
)
def test_bandwidth_reads_bits_and_returns_bytes(text: str, bytes_per_s: float) -> None:
    assert parse_bandwidth(text) == bytes_per_s


@pytest.mark.parametrize(("text", "seconds"), [("40ms", 0.04), ("1.5s", 1.5), ("250us", 250e-6)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_size("-1MiB"), "zero or more"),
        (lambda: parse_bandwidth("0Mbit"), "more than zero"),
        (lambda: parse_size("nan"), "cannot read"),
        (lambda: parse_size("1e999"), "not a finite number"),
        (lambda: parse_duration("3 fortnights"), "unknown unit 'fortnights'"),
        (lambda: parse_bandwidth("200"), "needs a unit"),
    ],
)
def test_bad_quantities_say_what_was_expected(call, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        call()


def test_formatting_is_short_and_readable() -> None:
    assert format_size(512 * 2**20) == "512 MiB"
    assert format_size(100) == "100 B"
    assert format_bandwidth(25e6) == "200 Mbit/s"
    assert format_duration(0.04) == "40 ms"
    assert format_duration(1.5) == "1.5 s"
