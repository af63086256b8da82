"""Parsing and formatting of the quantities operators type: sizes, rates, bandwidths, durations.

Every parser returns SI base units as floats (bytes, bytes per second, seconds) and raises
`UnitError` with a message fit to show as is. Bandwidth is typed in bits per second (as links
are sold) but returned in bytes per second, the unit the model works in.
"""

from __future__ import annotations

import math
import re

from whimbrel.backends.errors import UsageError

__all__ = [
    "UnitError",
    "format_bandwidth",
    "format_duration",
    "format_size",
    "parse_bandwidth",
    "parse_duration",
    "parse_rate",
    "parse_size",
]


class UnitError(UsageError, ValueError):
    """A quantity could not be read; the message says what was expected."""


_SIZE_UNITS: dict[str, float] = {
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "tb": 1e12,
}
_BIT_UNITS: dict[str, float] = {
    "bit": 1,
    "kbit": 1e3,
    "mbit": 1e6,
    "gbit": 1e9,
    "kibit": 1024,
    "mibit": 1024**2,
    "gibit": 1024**3,
}
_TIME_UNITS: dict[str, float] = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
}

_NUMBER_UNIT = re.compile(
    r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-zµ/]*)\s*$"
)


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    if not isinstance(text, str):
        text = str(text)
    match = _NUMBER_UNIT.match(text)
    if not match:
        raise UnitError(
            f"{what}: cannot read {text!r}, expected a number and a unit like {example}"
        )
    value = float(match.group(1))
    if not math.isfinite(value):
        raise UnitError(f"{what}: {text!r} is not a finite number")
    return value, match.group(2)


def _lookup(table: dict[str, float], unit: str, what: str, text: str, example: str) -> float:
    try:
        return table[unit.lower()]
    except KeyError:
        known = ", ".join(sorted({k for k in table if k}))
        raise UnitError(
            f"{what}: unknown unit {unit!r} in {text!r} (known: {known}; e.g. {example})"
        ) from None


def _check_sign(value: float, text: str, what: str, *, allow_zero: bool) -> float:
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise UnitError(f"{what}: {text!r} must be {bound}")
    return value


def parse_size(text: str, what: str = "size", *, allow_zero: bool = True) -> float:
    """`512MiB`, `1.5GB`, `4096` (bytes) -> bytes."""
    value, unit = _split(text, what, "512MiB")
    factor = 1.0 if unit == "" else _lookup(_SIZE_UNITS, unit, what, text, "512MiB")
    return _check_sign(value * factor, text, what, allow_zero=allow_zero)


def parse_rate(text: str, what: str = "rate", *, allow_zero: bool = True) -> float:
    """`8MiB/s`, `100kB/s`, `0` -> bytes per second."""
    value, unit = _split(text, what, "8MiB/s")
    if unit:
        if not unit.lower().endswith("/s"):
            raise UnitError(f"{what}: {text!r} needs a per-second unit, e.g. 8MiB/s")
        factor = _lookup(_SIZE_UNITS, unit[:-2], what, text, "8MiB/s")
    else:
        factor = 1.0
    return _check_sign(value * factor, text, what, allow_zero=allow_zero)


def parse_bandwidth(text: str, what: str = "bandwidth", *, allow_zero: bool = False) -> float:
    """`200Mbit`, `1Gbit/s`, `100Mbps` -> bytes per second."""
    value, unit = _split(text, what, "200Mbit")
    unit = unit.lower()
    if unit.endswith("/s"):
        unit = unit[:-2]
    elif unit.endswith("ps"):
        unit = unit[:-2] + "it"
    if not unit:
        raise UnitError(f"{what}: {text!r} needs a unit, e.g. 200Mbit")
    factor = _lookup(_BIT_UNITS, unit, what, text, "200Mbit")
    return _check_sign(value * factor / 8.0, text, what, allow_zero=allow_zero)


def parse_duration(text: str, what: str = "duration", *, allow_zero: bool = True) -> float:
    """`40ms`, `1.5s`, `250us` -> seconds. A bare number is seconds."""
    value, unit = _split(text, what, "40ms")
    factor = 1.0 if unit == "" else _lookup(_TIME_UNITS, unit, what, text, "40ms")
    return _check_sign(value * factor, text, what, allow_zero=allow_zero)


def format_size(n_bytes: float) -> str:
    """Binary units, three significant figures: `1.50 GiB`, `12.0 MiB`, `512 B`."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{value:.0f} B"
            return f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_bandwidth(bytes_per_s: float) -> str:
    """Bytes per second shown as a link rate: `200 Mbit/s`."""
    bits = float(bytes_per_s) * 8
    for unit, factor in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bits) >= factor:
            return f"{bits / factor:.3g} {unit}"
    return f"{bits:.0f} bit/s"


def format_duration(seconds: float) -> str:
    """`1.25 s`, `40.0 ms`, `250 µs`."""
    s = float(seconds)
    if not math.isfinite(s):
        return str(s)
    if abs(s) >= 1:
        return f"{s:.3g} s" if abs(s) < 100 else f"{s:.0f} s"
    if abs(s) >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"
