"""Interpolation over the measured tables: piecewise-linear in log coordinates, clamped at the
edges (outside the measured range the nearest edge's value holds, never an extrapolated trend).

Grid3 interpolates values (efficiencies); RoofCurve and TimeGrid read kernel
*times* so that they never fall as the work grows: measured times become running maxima along
each growing coordinate and are interpolated log-log, and beyond the table the edge's
efficiency holds (time keeps growing with the work).
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence


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


def running_max(values: Sequence[float]) -> list[float]:
    """Each value raised to the largest before it: a measured time that dips as the work grows
    (noise, a better tile choice) is read as the time of the smaller work."""
    out, top = [], -math.inf
    for v in values:
        top = max(top, v)
        out.append(top)
    return out


class RoofCurve:
    """A kernel's time against its roofline time r, from measured points (r, seconds).

    Times are made non-decreasing in r (running maximum) and never below r (efficiency ≤ 1),
    then interpolated log-log between points; beyond the points the edge efficiency r / t
    holds (cap=False: r is a count, not a time, and only the running maximum applies), so time keeps growing with r above the table and shrinks with r below it (where a
    latency floor takes over). Time is therefore non-decreasing in r everywhere.
    """

    def __init__(self, points: Sequence[tuple[float, float]], cap: bool = True) -> None:
        pts = sorted((r, max(t, r) if cap else t) for r, t in points if r > 0 and t > 0)
        if not pts:
            raise ValueError("RoofCurve needs at least one point")
        self.rs = [r for r, _ in pts]
        self.ts = running_max([t for _, t in pts])
        self.lr = [math.log(r) for r in self.rs]
        self.lt = [math.log(t) for t in self.ts]

    def __call__(self, roof: float) -> float:
        if roof <= 0:
            return 0.0
        if roof <= self.rs[0]:
            return roof * self.ts[0] / self.rs[0]
        if roof >= self.rs[-1]:
            return roof * self.ts[-1] / self.rs[-1]
        return math.exp(interp1(self.lr, self.lt, math.log(roof)))


class TimeGrid:
    """A kernel's time over two growing coordinates (rows, and width or weight), monotone.

    time_at(x, y) gives the time at each grid point (roofline at the target / measured
    efficiency); the grid is made non-decreasing along both axes (running maxima), and read
    by bilinear interpolation of log time in log coordinates, which keeps it non-decreasing.
    Outside the grid the edge efficiency holds: time = roof(x, y) · edge time / edge roof.
    """

    def __init__(self, xs: Sequence[float], ys: Sequence[float],
                 time_at: Callable[[float, float], float],
                 roof: Callable[[float, float], float]) -> None:
        self.xs, self.ys, self.roof = sorted(set(xs)), sorted(set(ys)), roof
        rows = [running_max([time_at(x, y) for y in self.ys]) for x in self.xs]
        for i in range(1, len(rows)):
            rows[i] = [max(a, b) for a, b in zip(rows[i], rows[i - 1])]
        self.logs = [[math.log(t) for t in row] for row in rows]
        self.lx, self.ly = [math.log(x) for x in self.xs], [math.log(y) for y in self.ys]

    def __call__(self, x: float, y: float) -> float:
        xc = min(max(x, self.xs[0]), self.xs[-1])
        yc = min(max(y, self.ys[0]), self.ys[-1])
        i0, i1, tx = _bracket(self.lx, math.log(xc))
        g = self.logs
        if len(self.ys) == 1:  # one column (a matmul's M axis)
            low, high = g[i0][0], g[i1][0]
        else:
            j0, j1, ty = _bracket(self.ly, math.log(yc))
            low = g[i0][j0] + ty * (g[i0][j1] - g[i0][j0])
            high = g[i1][j0] + ty * (g[i1][j1] - g[i1][j0])
        t = math.exp(low + tx * (high - low))
        if (xc, yc) != (x, y):
            t *= self.roof(x, y) / self.roof(xc, yc)
        return t
