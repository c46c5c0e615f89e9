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

from perfmodel.cost.engines import EnginePreset, engine_preset
from perfmodel.hardware.gpu import GpuSpec, bundled_names, load_gpu
from perfmodel.cost.interpolate import interp1
from perfmodel.cost.kernel_tables import KernelModel, Rates
from perfmodel.cost.ops import ATTENTION, GROUPED, MATMUL, Op
from perfmodel.cost.precision import Precision

@dataclass(frozen=True)
class Estimate:
    """How the estimate was made (note), or why there is none (estimator None)."""

    estimator: Callable[[Op], float | None] | None
    engine: str
    note: str
    flag: str | None = None


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

