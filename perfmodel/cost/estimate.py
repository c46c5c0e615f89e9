"""The estimate: each op's time from kernel efficiencies a calibrated profile measured.

For every measured table point, efficiency = roofline time at the profile's measured peaks /
measured time. An op's estimate is its roofline time divided by the efficiency interpolated at
its shape (log coordinates, clamped at the table's edges): matmuls by (M, K, N) per weight dtype,
grouped expert matmuls as one matmul over the touched experts, attention by its FLOPs (prefill)
or bytes (decode), memory-bound kernels by their bytes, each kernel the engine preset launches
timed on its own. Tables were timed inside CUDA graphs, so the gaps between kernels are in them.

A GPU without tables borrows the efficiencies of the nearest measured profile, applied to its
own datasheet peaks scaled by the fraction of its datasheet that the measured GPU reached; the
output flags it. No constant here is fitted to a model or a measurement of one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

from perfmodel.cost.engines import EnginePreset, Kernel, engine_preset
from perfmodel.hardware.gpu import GpuSpec, Tables, bundled_names, load_gpu
from perfmodel.cost.interpolate import Grid3, LogCurve, interp1
from perfmodel.cost.ops import ATTENTION, GROUPED, MATMUL, Op
from perfmodel.cost.precision import Precision, preset

# Bytes per weight and per input element of each linear table, as calibrate-gpu times them.
TABLE_BYTES = {"bf16": (2, 2), "fp16": (2, 2), "fp8": (1, 1), "int8": (1, 1),
               "int4": (preset("int4").weight_bytes, 2)}
TABLE_COMPUTE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "bf16"}


@dataclass(frozen=True)
class Estimate:
    """How the estimate was made (note), or why there is none (estimator None)."""

    estimator: Callable[[Op], float | None] | None
    engine: str
    note: str
    flag: str | None = None


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


def _table_for(op: Op, engine: EnginePreset) -> str:
    dtype = op.weight_dtype or op.dtype
    if dtype in ("int4", "mxfp4"):
        return engine.int4_table
    return dtype


def make_estimator(model: KernelModel, target: Rates, engine: EnginePreset
                   ) -> Callable[[Op], float | None]:
    """The estimate of all `count` occurrences of an op, or None if no table covers it."""

    def seconds(op: Op) -> float | None:
        roof = target.roofline(op.flops, op.bytes, op.dtype)
        if op.kind == MATMUL:
            grid = model.linear.get(_table_for(op, engine)) or model.linear.get("bf16")
            if grid is None:
                return None
            m, n, k = op.shape
            t = roof / grid(max(m, 1), k, n)
        elif op.kind == GROUPED:
            per_expert, n, k, touched = op.shape
            grid = model.grouped.get(_table_for(op, engine)) or model.grouped.get("bf16")
            if grid is not None:
                t = roof / grid(max(per_expert, 1), max(touched, 1) * k * n, 1)
            else:  # no grouped table: one matmul over the touched experts' columns
                linear = model.linear.get(_table_for(op, engine)) or model.linear.get("bf16")
                if linear is None:
                    return None
                t = roof / linear(max(per_expert, 1), k, n * touched)
        elif op.kind == ATTENTION:
            curve = model.prefill if op.phase == "prefill" else model.decode
            if curve is None:
                return None
            work = op.flops if op.phase == "prefill" else op.bytes
            t = roof / interp1(curve[0], curve[1], math.log(max(work, 1.0)))
        else:
            t = sum(model.kernel_seconds(kernel) for kernel in engine.kernels_for(op))
        t += sum(model.kernel_seconds(kernel) for kernel in engine.extra_for(op))
        return op.count * t

    return seconds


@functools.cache
def bundled_measured() -> tuple[GpuSpec, ...]:
    """The bundled measured profiles that carry kernel tables (read once per process)."""
    profiles = (load_gpu(n) for n in bundled_names() if n.endswith("-measured"))
    return tuple(p for p in profiles if p.tables is not None and p.tables.linear)


def _source_for(gpu: GpuSpec) -> tuple[GpuSpec | None, str | None]:
    """The profile whose tables the estimate uses: gpu itself, else the nearest measured one."""
    if gpu.tables is not None and gpu.tables.linear:
        return gpu, None
    measured = bundled_measured()
    if not measured:
        return None, None
    own = [p for p in measured if p.datasheet == gpu.name]

    def distance(p: GpuSpec) -> float:
        return abs(math.log(p.mem_bandwidth / gpu.mem_bandwidth)) + \
            abs(math.log(p.peak("bf16") / gpu.peak("bf16")))

    source = own[0] if own else min(measured, key=distance)
    why = "its own measured profile" if own else "the nearest measured profile"
    return source, (f"estimate derived from {source.name} ({why}), scaled to {gpu.name}'s "
                    "datasheet by the fraction of its datasheet that GPU measured")


def _target_rates(gpu: GpuSpec, source: GpuSpec) -> Rates:
    if gpu is source:
        return Rates(dict(gpu.peak_flops), gpu.mem_bandwidth)
    sheet = load_gpu(source.datasheet) if source.datasheet else None
    if sheet is None:
        return Rates(dict(gpu.peak_flops), gpu.mem_bandwidth)
    peaks = {}
    for dtype, peak in gpu.peak_flops.items():
        got, spec = source.peak(dtype), sheet.peak(dtype)
        peaks[dtype] = peak * got / spec if peak and got and spec else peak
    return Rates(peaks, gpu.mem_bandwidth * source.mem_bandwidth / sheet.mem_bandwidth)


def estimator_for(gpu: GpuSpec, precision: Precision, engine: str | None) -> Estimate:
    """The estimator for this GPU and engine, or None with the reason."""
    preset_ = engine_preset(engine)
    source, flag = _source_for(gpu)
    if source is None:
        return Estimate(None, preset_.name, f"no measured profile to estimate {gpu.name} from; "
                        "run `perfmodel calibrate-gpu`")
    model = KernelModel(source.tables, Rates(dict(source.peak_flops), source.mem_bandwidth))
    needed = {precision.base_dtype, precision.weight_dtype}
    needed = {preset_.int4_table if d in ("int4", "mxfp4") else d for d in needed}
    missing = sorted(d for d in needed if d not in model.linear)
    if missing or model.prefill is None or model.decode is None:
        what = ", ".join([f"linear {d}" for d in missing]
                         + (["attention"] if model.prefill is None or model.decode is None else []))
        return Estimate(None, preset_.name, f"{source.name} has no measured {what} table; "
                        "run a full `perfmodel calibrate-gpu`")
    note = f"{preset_.name} engine, kernel tables of {source.name} ({source.date})"
    return Estimate(make_estimator(model, _target_rates(gpu, source), preset_), preset_.name,
                    note, flag)

