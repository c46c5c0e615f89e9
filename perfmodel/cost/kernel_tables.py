"""Kernel tables read into interpolators: what each kind of kernel takes on a measured GPU.

KernelModel turns one profile's measured tables into efficiencies (roofline time at the
profile's peaks / measured time) over each table's own coordinates, and times one engine Kernel
(engines.py) from the table of its kind. estimate.py combines these with an engine preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.cost.engines import Kernel
from perfmodel.cost.interpolate import Grid3, LogCurve
from perfmodel.cost.precision import preset
from perfmodel.hardware.gpu import Tables

# Bytes per weight and per input element of each linear table, as calibrate-gpu times them.
TABLE_BYTES = {"bf16": (2, 2), "fp16": (2, 2), "fp8": (1, 1), "int8": (1, 1),
               "int4": (preset("int4").weight_bytes, 2)}
TABLE_COMPUTE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "bf16"}


@dataclass(frozen=True)
class Rates:
    """The peaks an estimate divides by: measured, or a datasheet scaled like the source."""

    peaks: dict[str, float | None]
    bandwidth: float

    def roofline(self, flops: float, nbytes: float, dtype: str) -> float:
        peak = self.peaks.get(dtype) or self.peaks["bf16"]
        return max(flops / peak, nbytes / self.bandwidth)


class KernelModel:
    """Efficiency interpolators built once from one measured profile's tables."""

    def __init__(self, tables: Tables, rates: Rates) -> None:
        self.rates = rates
        self.linear = {d: self._linear_grid(d, t) for d, t in tables.linear.items()
                       if d in TABLE_BYTES and any(s for row in t.seconds for s in row)}
        self.grouped = {d: self._grouped_grid(d, pts)
                        for d, pts in tables.grouped.items() if pts}
        self.prefill = self._attention_curve(tables.attention_prefill, prefill=True)
        self.decode = self._attention_curve(tables.attention_decode, prefill=False)
        self.floor = tables.graph_launch_s or \
            (min(s for _, s in tables.elementwise) if tables.elementwise else None)
        self.elementwise = self._bytes_curve(tables.elementwise)
        self.strided = self._bytes_curve(tables.strided) or self.elementwise
        self.rmsnorm = self._norm_grid(tables.rmsnorm)
        self.rope = self._bytes_curve(tables.rope)
        self.silu_mul = self._bytes_curve(tables.silu_mul)
        self.routing = self._count_curve(tables.routing)
        self.sort = self._count_curve(tables.sort)

    def _linear_grid(self, dtype: str, table) -> Grid3:
        w, a = TABLE_BYTES[dtype]
        values = {}
        for (k, n), row in zip(table.shapes, table.seconds):
            for m, seconds in zip(table.ms, row):
                if seconds:
                    roof = self.rates.roofline(2.0 * m * n * k, n * k * w + m * k * a + m * n * 2,
                                               TABLE_COMPUTE[dtype])
                    values[(m, k, n)] = roof / seconds
        return Grid3((table.ms, [k for k, _ in table.shapes], [n for _, n in table.shapes]),
                     values)

    def _grouped_grid(self, dtype: str, points) -> Grid3:
        """Grouped GEMM efficiency over (rows per expert, weight elements of all touched
        experts): a grouped kernel's tiles span every expert, so its parallelism, and with it
        its efficiency, follows the total weight it streams more than any one expert's shape."""
        w, a = TABLE_BYTES.get(dtype, (2, 2))
        sums: dict[tuple[float, float, float], list[float]] = {}
        for m, k, n, experts, seconds in points:
            roof = self.rates.roofline(2.0 * m * experts * n * k,
                                       experts * (n * k * w + m * k * a + m * n * 2),
                                       TABLE_COMPUTE.get(dtype, "bf16"))
            sums.setdefault((m, experts * k * n, 1), []).append(roof / seconds)
        values = {key: sum(v) / len(v) for key, v in sums.items()}
        axes = (sorted({key[0] for key in values}), sorted({key[1] for key in values}), [1])
        return Grid3(axes, values)

    def _norm_grid(self, points) -> Grid3 | None:
        if not points:
            return None
        values = {(rows, width, 1): (2 * rows * width * 2 / self.rates.bandwidth) / seconds
                  for rows, width, seconds in points}
        axes = (sorted({r for r, _, _ in points}), sorted({w for _, w, _ in points}), [1])
        return Grid3(axes, values)

    def _bytes_curve(self, pairs) -> LogCurve | None:
        """Memory-bound kernels: efficiency against bytes moved."""
        if not pairs:
            return None
        pairs = sorted(pairs)
        return LogCurve([b for b, _ in pairs], [(b / self.rates.bandwidth) / s for b, s in pairs])

    @staticmethod
    def _count_curve(points) -> LogCurve | None:
        """Kernel chains timed against a count (tokens, pairs): seconds, log-log."""
        if not points:
            return None
        points = sorted(points)
        return LogCurve([c for c, _ in points], [s for _, s in points])

    def _attention_curve(self, table, prefill: bool):
        """Efficiency against the log of the work (FLOPs for prefill, bytes for decode)."""
        if table is None or not table.points:
            return None
        n, kv, h = table.heads, table.kv_heads, table.head_dim
        points = []
        for b, length, seconds in table.points:
            if prefill:
                flops = 2.0 * b * n * length * (length + 1) / 2 * 2 * h
                nbytes = b * length * (2 * n + 2 * kv) * h * 2
            else:
                flops = 2.0 * b * n * length * 2 * h
                nbytes = b * length * 2 * kv * h * 2 + b * 2 * n * h * 2
            eff = self.rates.roofline(flops, nbytes, "bf16") / seconds
            points.append((math.log(flops if prefill else nbytes), eff))
        points.sort()
        return [x for x, _ in points], [e for _, e in points]

    def _by_bytes(self, curve, nbytes: float) -> float:
        """A memory-bound kernel: the floor for tiny ones, else its bytes at the table's
        efficiency (the largest measured size's efficiency beyond the table)."""
        if nbytes <= 0 or curve is None:
            return self.floor or 0.0
        eff = curve.ys[-1] if nbytes > curve.xs[-1] else curve(nbytes)
        return max(nbytes / self.rates.bandwidth / eff, self.floor or 0.0)

    def kernel_seconds(self, kernel: Kernel | float) -> float:
        """One kernel of the engine, timed from the table of its kind (a bare number: bytes of
        a contiguous elementwise kernel). Missing tables fall back to the elementwise one."""
        if not isinstance(kernel, Kernel):
            return self._by_bytes(self.elementwise, kernel)
        if kernel.kind == "strided":
            return self._by_bytes(self.strided, kernel.nbytes)
        if kernel.kind == "rope":  # five kernels, timed together; else kernel by kernel
            if self.rope is not None:
                return self._by_bytes(self.rope, kernel.nbytes)
            x = kernel.nbytes / 2
            return sum(self._by_bytes(self.strided, f * x) for f in (2, 1, 2, 2)) \
                + self._by_bytes(self.elementwise, 3 * x)
        if kernel.kind == "silu_mul":  # two kernels, timed together; else one by one
            if self.silu_mul is not None:
                return self._by_bytes(self.silu_mul, kernel.nbytes)
            return self._by_bytes(self.strided, 2 / 3 * kernel.nbytes) \
                + self._by_bytes(self.strided, kernel.nbytes)
        if kernel.kind == "rmsnorm" and self.rmsnorm is not None:
            eff = self.rmsnorm(max(kernel.rows, 1), max(kernel.width, 1), 1)
            return max(kernel.nbytes / self.rates.bandwidth / eff, self.floor or 0.0)
        if kernel.kind in ("routing", "sort"):
            curve = self.routing if kernel.kind == "routing" else self.sort
            if curve is not None:
                return curve(max(kernel.rows, 1))
            return (4 if kernel.kind == "routing" else 3) * (self.floor or 0.0)
        if kernel.kind == "tiny":
            return self.floor or 0.0
        return self._by_bytes(self.elementwise, kernel.nbytes)
