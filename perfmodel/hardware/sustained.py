"""The power limit as a profile holds it: per dtype, the fraction of the table rate matrix work
keeps in bursts of a given length (measured by perfmodel/calibrate/power.py; used by
perfmodel/serve/step_cost.py). Pure data and arithmetic: no torch."""

from __future__ import annotations

import bisect
import math
from itertools import pairwise
from typing import Any

from perfmodel.errors import GpuProfileError

Curve = tuple[tuple[float, float], ...]  # (burst seconds, fraction of the table rate), L rising


def sustained_fraction(curve: Curve, seconds: float) -> float:
    """The curve's fraction for matrix work lasting `seconds`: its last point's beyond the last
    burst, linear in log L between points, and below the first burst from that point's down to
    1 at a tenth of it (the tables themselves were timed in ~25 ms bursts); 1 without a curve."""
    if not curve or seconds <= 0:
        return 1.0
    xs, x = [math.log(b) for b, _ in curve], math.log(seconds)
    if x <= xs[0]:
        below = xs[0] - math.log(10)
        return 1.0 - (1.0 - curve[0][1]) * max(0.0, x - below) / (xs[0] - below)
    i = bisect.bisect_left(xs, x)
    if i == len(xs):
        return curve[-1][1]
    (x0, y0), (x1, y1) = (xs[i - 1], curve[i - 1][1]), (xs[i], curve[i][1])
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def parse_sustained(data: Any, path: str) -> dict[str, Curve]:
    """`sustained: {dtype: {burst_s: [...], fraction: [...]}, source: text}`: burst lengths
    rising and positive, fractions in (0, 1]."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GpuProfileError(f"GPU profile {path}: sustained must be a mapping of dtypes")
    out = {}
    for dtype, curve in data.items():
        if dtype == "source":
            continue
        bursts = curve.get("burst_s") if isinstance(curve, dict) else None
        fractions = curve.get("fraction") if isinstance(curve, dict) else None
        ok = (isinstance(bursts, list) and isinstance(fractions, list) and bursts
              and len(bursts) == len(fractions)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in bursts + fractions)
              and all(b > 0 for b in bursts) and all(0 < f <= 1 for f in fractions)
              and all(a < b for a, b in pairwise(bursts)))
        if not ok:
            raise GpuProfileError(
                f"GPU profile {path}: sustained.{dtype} needs burst_s (rising, > 0) and "
                "fraction (each in (0, 1]) lists of one length")
        out[str(dtype)] = tuple((float(b), float(f)) for b, f in zip(bursts, fractions))
    return out
