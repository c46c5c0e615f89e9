"""Kernel tables read into time models: what each kind of kernel takes on a GPU.

KernelModel turns one measured profile's tables (the source) into times on a target GPU (the
source itself, or a datasheet GPU that borrows them). Each table point keeps the efficiency it
measured, roofline at the source's measured peaks / measured time, capped at 1, and is applied
to the target's own peaks and bandwidth: a borrowed kernel takes its roofline at the target's
rates divided by that efficiency. Every reader is monotone: time never falls as a kernel's
rows, width, bytes or count grow (running maxima over the tables), never falls below the
kernel's roofline at the target, and never below a latency floor (the smallest time measured
for that kind of kernel, else `launch.graph_s`).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.cost.attention_tables import AttentionModel
from perfmodel.cost.engines import Kernel
from perfmodel.cost.interpolate import Grid3, RoofCurve, TimeGrid
from perfmodel.cost.ops import Op, rmsnorm_bytes
from perfmodel.cost.precision import preset
from perfmodel.hardware.gpu import Tables

# Bytes per weight and per input element of each linear table, as calibrate-gpu times them.
TABLE_BYTES = {"bf16": (2, 2), "fp16": (2, 2), "fp8": (1, 1), "int8": (1, 1),
               "int4": (preset("int4").weight_bytes, 2)}
TABLE_COMPUTE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "bf16"}
QUANT_BYTES = 3  # activation quantization reads 2 bytes (bf16) and writes 1 per element


@dataclass(frozen=True)
class Rates:
    """The peaks an estimate divides by: measured, or a datasheet scaled like the source."""

    peaks: dict[str, float | None]
    bandwidth: float

    def roofline(self, flops: float, nbytes: float, dtype: str) -> float:
        peak = self.peaks.get(dtype) or self.peaks["bf16"]
        return max(flops / peak, nbytes / self.bandwidth)


class KernelModel:
    """Time models built once from one measured profile's tables, for one target's rates."""

    def __init__(self, tables: Tables, rates: Rates, target: Rates | None = None) -> None:
        self.tables, self.rates, self.target = tables, rates, target or rates
        self.quant_in_linear = getattr(tables, "quant_in_linear", True)
        self.linear = {d: self._linear_grid(d, t) for d, t in tables.linear.items()
                       if d in TABLE_BYTES and any(s for row in t.seconds for s in row)}
        self.linear_floor = {d: min(s for row in tables.linear[d].seconds for s in row if s)
                             for d in self.linear}
        self.grouped = {d: self._grouped_grid(d, pts) for d, pts in tables.grouped.items() if pts}
        self.attention = AttentionModel(tables, self.rates, self.target)
        self.floor = tables.graph_launch_s or \
            (min(s for _, s in tables.elementwise) if tables.elementwise else None)
        self.elementwise = self._bytes_curve(tables.elementwise)
        self.strided = self._bytes_curve(tables.strided) or self.elementwise
        self.rope = self._bytes_curve(tables.rope)
        self.silu_mul = self._bytes_curve(tables.silu_mul)
        self.rmsnorm = self._rows_width(tables.rmsnorm, lambda r, w: rmsnorm_bytes(r, w, 2))
        quant = getattr(tables, "act_quant", None) or {}
        self.act_quant = {key: self._rows_width(pts, lambda r, w: r * w * QUANT_BYTES)
                          for key, pts in quant.items() if pts}
        self.routing = self._count_curve(tables.routing)
        self.sort = self._count_curve(tables.sort)
        self._matmuls: dict[tuple, TimeGrid] = {}
        self._groups: dict[tuple, TimeGrid] = {}
        self._kernels: dict[Kernel, float] = {}

    # ---- tables -> efficiencies (source) ----

    def _linear_grid(self, dtype: str, table) -> Grid3:
        w, a = TABLE_BYTES[dtype]
        values = {}
        for (k, n), row in zip(table.shapes, table.seconds):
            for m, seconds in zip(table.ms, row):
                if seconds:
                    roof = self.rates.roofline(2.0 * m * n * k, n * k * w + m * k * a + m * n * 2,
                                               TABLE_COMPUTE[dtype])
                    values[(m, k, n)] = min(roof / seconds, 1.0)
        return Grid3((table.ms, [k for k, _ in table.shapes], [n for _, n in table.shapes]),
                     values)

    def _grouped_grid(self, dtype: str, points) -> tuple[Grid3, float]:
        """Grouped GEMM efficiency over (rows per expert, weight elements of all touched
        experts): a grouped kernel's tiles span every expert, so its parallelism, and with it
        its efficiency, follows the total weight it streams more than any one expert's shape."""
        w, a = TABLE_BYTES.get(dtype, (2, 2))
        sums: dict[tuple[float, float, float], list[float]] = {}
        for m, k, n, experts, seconds in points:
            roof = self.rates.roofline(2.0 * m * experts * n * k,
                                       experts * (n * k * w + m * k * a + m * n * 2),
                                       TABLE_COMPUTE.get(dtype, "bf16"))
            sums.setdefault((m, experts * k * n, 1), []).append(min(roof / seconds, 1.0))
        values = {key: sum(v) / len(v) for key, v in sums.items()}
        axes = (sorted({key[0] for key in values}), sorted({key[1] for key in values}), [1])
        return Grid3(axes, values), min(p[-1] for p in points)

    def _rows_width(self, points, nbytes) -> tuple[TimeGrid, float] | None:
        """A memory-bound kernel over (rows, width): its efficiency at the source, applied
        to the target's bandwidth."""
        if not points:
            return None
        src, tgt = self.rates.bandwidth, self.target.bandwidth
        eff = Grid3(({r for r, _, _ in points}, {w for _, w, _ in points}, [1]),
                    {(r, w, 1): min(nbytes(r, w) / src / s, 1.0) for r, w, s in points})
        grid = TimeGrid(eff.axes[0], eff.axes[1],
                        lambda r, w: nbytes(r, w) / tgt / eff(r, w, 1),
                        lambda r, w: nbytes(r, w) / tgt)
        return grid, min(s for _, _, s in points)

    def _bytes_curve(self, pairs) -> tuple[RoofCurve, float] | None:
        """Memory-bound kernels: time against bytes / the target's bandwidth."""
        if not pairs:
            return None
        scale = self.rates.bandwidth / self.target.bandwidth
        curve = RoofCurve([(b / self.target.bandwidth, s * scale) for b, s in pairs])
        return curve, min(s for _, s in pairs)

    def _count_curve(self, points) -> tuple[RoofCurve, float] | None:
        """Kernel chains timed against a count (tokens, pairs): time, running max, log-log,
        growing in proportion beyond the table; on a borrowing GPU scaled by bandwidth."""
        if not points:
            return None
        scale = self.rates.bandwidth / self.target.bandwidth
        return RoofCurve([(c, s * scale) for c, s in points], cap=False), \
            min(s for _, s in points)

    # ---- ops and kernels -> seconds (target) ----

    def matmul(self, table: str, m: float, n: float, k: float, fixed: float, row: float,
               dtype: str) -> float | None:
        """One matmul of m rows against a (n, k) weight, timed from the linear table `table`:
        its bytes are fixed (the weights) + m·row, its FLOPs 2·m·n·k at the dtype's peak."""
        grid = self.linear.get(table)
        if grid is None:
            return None
        key = (table, n, k, fixed, row, dtype)
        if key not in self._matmuls:
            def roof(x, _):
                return self.target.roofline(2.0 * x * n * k, fixed + x * row, dtype)
            self._matmuls[key] = TimeGrid(grid.axes[0], [1],
                                          lambda x, y: roof(x, y) / grid(x, k, n), roof)
        return max(self._matmuls[key](max(m, 1), 1), self.linear_floor[table])

    def grouped_matmul(self, table: str, op: Op) -> float | None:
        """The routed experts' grouped GEMM: rows per expert against the touched weight."""
        found = self.grouped.get(table)
        if found is None:
            return None
        grid, floor = found
        per_expert, n, k, touched = op.shape
        row = op.row_bytes or 2 * (k + n)
        w = max(op.bytes - per_expert * touched * row, 0.0) / (touched * n * k)
        key = (table, n, k, w, row, op.dtype)
        if key not in self._groups:
            def roof(x, weights):
                return self.target.roofline(2.0 * x * weights,
                                            weights * (w + x * row / (n * k)), op.dtype)
            self._groups[key] = TimeGrid(grid.axes[0], grid.axes[1],
                                         lambda x, y: roof(x, y) / grid(x, y, 1), roof)
        return max(self._groups[key](max(per_expert, 1), touched * n * k), floor)

    def quant_seconds(self, key: str, rows: float, width: float) -> float | None:
        """One activation-quantization kernel (table act_quant[key]), or None without it."""
        found = self.act_quant.get(key)
        if found is None:
            return None
        grid, floor = found
        return max(grid(max(rows, 1), max(width, 1)), floor, self.floor or 0.0)

    def _by_bytes(self, found, nbytes: float) -> float:
        floor = self.floor or 0.0
        if nbytes <= 0 or found is None:
            return floor
        curve, own = found
        return max(curve(nbytes / self.target.bandwidth), own, floor)

    def _norm(self, rows: float, width: float) -> float:
        if self.rmsnorm is None:
            return self._by_bytes(self.elementwise, rmsnorm_bytes(rows, width, 2))
        grid, floor = self.rmsnorm
        return max(grid(max(rows, 1), max(width, 1)), floor, self.floor or 0.0)

    def kernel_seconds(self, kernel: Kernel | float) -> float:
        """One kernel of the engine, timed from the table of its kind (a bare number: bytes of
        a contiguous elementwise kernel). Missing tables fall back to the elementwise one.
        Results are remembered: a forward launches the same kernels layer after layer."""
        if not isinstance(kernel, Kernel):
            return self._by_bytes(self.elementwise, kernel)
        found = self._kernels.get(kernel)
        if found is None:
            if len(self._kernels) > 100_000:
                self._kernels.clear()
            found = self._kernels[kernel] = self._kernel_seconds(kernel)
        return found

    def _kernel_seconds(self, kernel: Kernel) -> float:
        kind = kernel.kind
        if kind == "strided":
            return self._by_bytes(self.strided, kernel.nbytes)
        if kind == "rope":  # five kernels, timed together; else kernel by kernel
            if self.rope is not None:
                return self._by_bytes(self.rope, kernel.nbytes)
            x = kernel.nbytes / 2
            return sum(self._by_bytes(self.strided, f * x) for f in (2, 1, 2, 2)) \
                + self._by_bytes(self.elementwise, 3 * x)
        if kind == "silu_mul":  # two kernels, timed together; else one by one
            if self.silu_mul is not None:
                return self._by_bytes(self.silu_mul, kernel.nbytes)
            return self._by_bytes(self.strided, 2 / 3 * kernel.nbytes) \
                + self._by_bytes(self.strided, kernel.nbytes)
        if kind == "rmsnorm":
            return self._norm(kernel.rows, kernel.width)
        if kind == "add_rmsnorm":  # fused: twice the bytes over the same rows, or the pair
            pair = self._norm(kernel.rows, kernel.width) + \
                self._by_bytes(self.elementwise, 3 * kernel.rows * kernel.width * 2)
            return min(self._norm(kernel.rows, 2 * kernel.width), pair)
        if kind in ("routing", "sort"):
            found = self.routing if kind == "routing" else self.sort
            if found is not None:
                curve, floor = found
                return max(curve(max(kernel.rows, 1)), floor)
            return (4 if kind == "routing" else 3) * (self.floor or 0.0)
        if kind == "tiny":
            return self.floor or 0.0
        return self._by_bytes(self.elementwise, kernel.nbytes)
