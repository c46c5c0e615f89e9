"""Interpolation over the measured tables: piecewise-linear in log coordinates, clamped at the
edges (outside the measured range the nearest edge's value holds, never an extrapolated trend).
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence


def _bracket(grid: Sequence[float], x: float) -> tuple[int, int, float]:
    """Indices i, j around x in an ascending grid and x's weight on j (clamped)."""
    if x <= grid[0]:
        return 0, 0, 0.0
    if x >= grid[-1]:
        last = len(grid) - 1
        return last, last, 0.0
    j = bisect.bisect_right(grid, x)
    i = j - 1
    return i, j, (x - grid[i]) / (grid[j] - grid[i])


def interp1(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear interpolation of ys over ascending xs at x, clamped to the end values."""
    i, j, t = _bracket(xs, x)
    return ys[i] + t * (ys[j] - ys[i])


class LogCurve:
    """Interpolation in log x and log y over fixed points (exact for power laws between them),
    clamped at the ends; the logarithms are taken once."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.xs, self.ys = list(xs), list(ys)
        self.lx = [math.log(v) for v in xs]
        self.ly = [math.log(v) for v in ys]

    def __call__(self, x: float) -> float:
        return math.exp(interp1(self.lx, self.ly, math.log(x)))


class Grid3:
    """Values on a full grid over three axes, interpolated trilinearly in log coordinates.

    Missing grid values (None) are filled from the nearest measured value along the first axis,
    then the others, so a skipped shape never breaks the interpolation.
    """

    def __init__(self, axes: tuple[Sequence[float], Sequence[float], Sequence[float]],
                 values: dict[tuple[float, float, float], float]) -> None:
        self.axes = tuple(sorted(set(a)) for a in axes)
        self.logs = tuple([math.log(v) for v in a] for a in self.axes)
        if not values:
            raise ValueError("Grid3 needs at least one measured value")
        self.values = {}
        for key in _product(self.axes):
            self.values[key] = values.get(key)
        for key, value in self.values.items():
            if value is None:
                self.values[key] = _nearest(values, key)

    def __call__(self, a: float, b: float, c: float) -> float:
        (ia0, ia1, ta), (ib0, ib1, tb), (ic0, ic1, tc) = (
            _bracket(logs, math.log(v)) for logs, v in zip(self.logs, (a, b, c)))
        ax, bx, cx, values = self.axes[0], self.axes[1], self.axes[2], self.values
        total = 0.0
        for ia, wa in ((ia0, 1 - ta), (ia1, ta)):
            if not wa:
                continue
            for ib, wb in ((ib0, 1 - tb), (ib1, tb)):
                if not wb:
                    continue
                for ic, wc in ((ic0, 1 - tc), (ic1, tc)):
                    if wc:
                        total += wa * wb * wc * values[(ax[ia], bx[ib], cx[ic])]
        return total


def _product(axes):
    return [(a, b, c) for a in axes[0] for b in axes[1] for c in axes[2]]


def _nearest(values: dict, key: tuple[float, float, float]) -> float:
    """The measured value nearest to key in log distance."""
    def dist(other):
        return sum(abs(math.log(x) - math.log(y)) for x, y in zip(key, other))
    return values[min(values, key=dist)]
