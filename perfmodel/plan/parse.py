"""Parsers for what the sweep and plan command lines take: lists, ranges, durations, prices.

Each returns SI values (seconds, dollars per GPU-hour) or raises a PerfmodelError whose one line
names the expected form.
"""

from __future__ import annotations

import math
import re

from perfmodel.errors import MAX_TOKENS, PerfmodelError

MAX_VALUES = 10_000  # values one list option names (docs/cli.md, "Bounds")

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s|m|min)?\s*$")
MAX_DURATION_S = 86400.0  # one day: far above any latency target, finite
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "m": 60.0, "min": 60.0}


def parse_duration(text: str, allow_zero: bool = False, flag: str = "a latency target",
                   maximum: float = MAX_DURATION_S) -> float:
    """'500ms', '0.5s', '50 ms', '2' (seconds) -> seconds, finite and at most `maximum`; zero
    only where allow_zero."""
    match = _DURATION.match(text)
    if not match:
        raise PerfmodelError(f"{flag}: cannot read the duration {text!r}; write e.g. 500ms, 0.5s "
                             "or 50 ms")
    value = float(match.group(1)) * _SCALE[match.group(2) or "s"]
    if value < 0 or (value == 0 and not allow_zero):
        raise PerfmodelError(f"{flag} must be above zero, not {text!r}")
    if not value <= maximum:
        raise PerfmodelError(f"{flag} is {text!r}, above the bound of {maximum:g} s; pass a "
                             "shorter duration")
    return value


def parse_strs(text: str | None) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (empty items dropped, order kept, duplicates removed)."""
    if text is None:
        return []
    return list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def parse_ints(text: str, flag: str, maximum: int = MAX_TOKENS) -> list[int]:
    """Whole numbers from 1 to maximum (at most MAX_VALUES of them): '1,2,4', a range '1-64' (every integer), '1-64:8' (step 8) or a
    doubling range '1-64x2'; items combine: '1,2,4-8'. Order kept, duplicates removed."""
    values: list[int] = []
    for item in parse_strs(text):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?:([:x])(\d+))?)?", item)
        if not match:
            raise PerfmodelError(f"{flag} takes whole numbers ≥ 1 and ranges (1,2,4 or 1-64 or "
                                 f"1-64:8 or 1-64x2), not {text!r}")
        lo, hi, how, by = match.groups()
        if max(len(g) for g in (lo, hi, by) if g) > 18:
            raise PerfmodelError(f"{flag}: {item[:24]!r}… goes above the bound of {maximum:,}; "
                                 "pass smaller numbers")
        lo_i, hi_i = int(lo), int(hi) if hi else int(lo)
        step = int(by) if by else 1
        if lo_i < 1 or hi_i < lo_i or (how == "x" and step < 2) or step < 1:
            raise PerfmodelError(f"{flag}: {item!r} is not a range of whole numbers ≥ 1 "
                                 "(low-high, a step ≥ 1, a factor ≥ 2)")
        if hi_i > maximum:
            raise PerfmodelError(f"{flag}: {item!r} goes above the bound of {maximum:,}; pass "
                                 "smaller numbers")
        count = (hi_i.bit_length() if how == "x" else (hi_i - lo_i) // step + 1)
        if len(values) + count > MAX_VALUES:
            raise PerfmodelError(f"{flag} {text!r} names more than {MAX_VALUES:,} values; use a "
                                 "step (1-4096:64) or a factor (1-4096x2)")
        if how == "x":
            value = lo_i
            while value <= hi_i:
                values.append(value)
                value *= step
        else:
            values.extend(range(lo_i, hi_i + 1, step))
    if not values:
        raise PerfmodelError(f"{flag} needs at least one whole number ≥ 1")
    return list(dict.fromkeys(values))


def parse_prices(text: str | None, gpus: list[str]) -> dict[str, float]:
    """'h100-sxm-measured=2.49,b200=5.5' -> {gpu: dollars per GPU-hour}, each gpu one of `gpus`."""
    prices: dict[str, float] = {}
    for item in parse_strs(text):
        name, _, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = -1.0
        if not name or not 0 < price < math.inf:
            raise PerfmodelError(f"--gpu-price takes GPU=DOLLARS_PER_HOUR pairs (a finite price "
                                 "above 0), comma-separated "
                                 f"(h100-sxm-measured=2.49), not {item!r}")
        if name.strip() not in gpus:
            raise PerfmodelError(f"--gpu-price names {name.strip()!r}, which is not among the GPUs "
                                 f"searched ({', '.join(gpus)}); add it to --gpus")
        prices[name.strip()] = price
    return prices


MAX_RATE = 1e9  # requests/s: far above any engine's


def parse_rates(text: str, flag: str = "--request-rate") -> list[float]:
    """'1,2.5,10' -> request rates per second, each finite and above 0 (at most MAX_VALUES;
    order kept, duplicates removed)."""
    values: list[float] = []
    for item in parse_strs(text):
        try:
            value = float(item)
        except ValueError:
            value = -1.0
        if not 0 < value <= MAX_RATE:
            raise PerfmodelError(f"{flag} takes request rates per second, finite and above 0 "
                                 f"(at most {MAX_RATE:g}), comma-separated (1,2.5,10), "
                                 f"not {item!r}")
        values.append(value)
    if not values:
        raise PerfmodelError(f"{flag} needs at least one request rate")
    if len(values) > MAX_VALUES:
        raise PerfmodelError(f"{flag} names more than {MAX_VALUES:,} values; give fewer")
    return list(dict.fromkeys(values))
