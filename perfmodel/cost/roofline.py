"""Where model meets GPU: an op's time is the larger of FLOPs / peak and bytes / bandwidth."""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.errors import WorkloadError
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.cost.ops import Op


@dataclass(frozen=True)
class OpCost:
    """An op's roofline: compute_s = FLOPs / peak, memory_s = bytes / bandwidth, each summed
    over its `count` occurrences; limit_s is the larger (for decode, the mean over the steps).

    estimate_s is what an engine really takes, when a measured profile supports one.
    """

    op: Op
    compute_s: float
    memory_s: float
    limit_s: float
    estimate_s: float | None = None

    @property
    def bound(self) -> str:
        if self.op.kind == "collective":  # memory_s is the time on the link (cost/collective.py)
            return "link"
        return "compute" if self.compute_s >= self.memory_s else "memory"


def peak_for(gpu: GpuSpec, dtype: str) -> float:
    """The GPU's peak FLOP/s in dtype, or a WorkloadError that names the alternatives."""
    peak = gpu.peak(dtype)
    if peak is None:
        have = [k for k, v in gpu.peak_flops.items() if v and k != "int4"]
        raise WorkloadError(f"{gpu.name} has no {dtype} tensor-core rate in its profile; "
                            f"use --precision {' or '.join(have)}")
    return peak


def cost(op: Op, gpu: GpuSpec, estimate_s: float | None = None) -> OpCost:
    """The roofline time of all `count` occurrences of op on gpu (with an estimate, if given)."""
    compute = op.count * op.flops / peak_for(gpu, op.dtype)
    memory = op.count * op.bytes / gpu.mem_bandwidth
    return OpCost(op, compute, memory, max(compute, memory), estimate_s)


def mean_of_max(c0: float, m0: float, c1: float, m1: float, points: int) -> float:
    """Mean of max(c(x), m(x)) over `points` equally spaced x where c and m are affine.

    c0, m0 are the values at the first point and c1, m1 at the last. Exact: the max of two affine
    functions is convex and piecewise affine, so each piece averages to the mean of its ends.
    """
    if points == 1:
        return max(c0, m0)
    d0, d1 = c0 - m0, c1 - m1
    if d0 * d1 >= 0:
        return (max(c0, m0) + max(c1, m1)) / 2
    step_c, step_m = (c1 - c0) / (points - 1), (m1 - m0) / (points - 1)
    cross = d0 / (d0 - d1) * (points - 1)  # where c = m, in steps from the first point
    first = math.floor(cross) + 1  # points 0 .. first-1 lie on the first piece
    lead_c = d0 > 0

    def piece(lo: int, hi: int) -> float:  # sum over points lo..hi of the leading line
        on_c = lead_c if lo == 0 else not lead_c
        start, step = (c0, step_c) if on_c else (m0, step_m)
        return (hi - lo + 1) * (2 * start + (lo + hi) * step) / 2

    return (piece(0, first - 1) + piece(first, points - 1)) / points
