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

from perfmodel.cost.engines import EnginePreset
from perfmodel.cost.presets import engine_preset
from perfmodel.hardware.gpu import GpuSpec, bundled_names, load_gpu
from perfmodel.cost.kernel_tables import QUANT_BYTES, KernelModel, Rates
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
    return table_name(op.weight_dtype or op.dtype, engine)


def table_name(dtype: str, engine: EnginePreset) -> str:
    """The linear table a weight dtype is timed from: 4-bit integer and MXFP4 weights from the
    preset's W4A16 table; a dtype with no table of its own (fp4) falls back to bf16 later."""
    return engine.int4_table if dtype in ("int4", "mxfp4") else dtype


def _fixed_and_row(op: Op, rows: float, n: float, k: float) -> tuple[float, float]:
    """Bytes that do not grow with M (the weights) and bytes per row (input + output)."""
    row = op.row_bytes or 2.0 * (k + n)
    return max(op.bytes - rows * row, 0.0), row


def _matmul(model: KernelModel, op: Op, table: str, moe_streams_dense: bool = False
            ) -> float | None:
    """One linear op from the tables. A grouped GEMM comes from the grouped table; with no
    grouped table, or where the engine's fused MoE kernel streams a memory-bound grouped GEMM's
    weights as a dense GEMM does (moe_streams_dense), from one dense matmul over the touched
    experts' columns (the better of the two in the second case)."""
    if op.kind == MATMUL:
        m, n, k = op.shape
        fixed, row = _fixed_and_row(op, m, n, k)
        return model.matmul(table, m, n, k, fixed, row, op.dtype)
    per_expert, n, k, touched = op.shape
    t = model.grouped_matmul(table, op)
    if t is None and table != "bf16":
        t = model.grouped_matmul("bf16", op)
    if t is None or (moe_streams_dense and _memory_bound(model, op)):
        fixed, row = _fixed_and_row(op, per_expert * touched, n, k)
        dense = model.matmul(table, per_expert, n * touched, k, fixed, row * touched, op.dtype)
        t = dense if t is None or dense is None else min(t, dense)
    return t


def _mla_decode(op: Op) -> bool:
    return op.phase == "decode" and op.attention is not None and op.attention.kind == "mla"


def _memory_bound(model: KernelModel, op: Op) -> bool:
    peak = model.target.peaks.get(op.dtype) or model.target.peaks["bf16"]
    return op.bytes / model.target.bandwidth > op.flops / peak


def quant_rows_width(op: Op) -> tuple[float, float]:
    """The activation a W8A8 matmul quantizes: M rows of K (grouped: every pair's row)."""
    if op.kind == GROUPED:
        per_expert, _, k, touched = op.shape
        return per_expert * touched, k
    return op.shape[0], op.shape[2]


def act_quant_seconds(model: KernelModel, op: Op, engine: EnginePreset,
                      scheme: str | None) -> float:
    """The activation-quantization kernels launched before a W8A8 matmul, where the profile's
    linear tables time the GEMM alone (tables.quant_in_linear false): the engine's own kernels
    for the scheme (act_quant "{dtype}/{scheme}"), or one fused kernel ("{dtype}/fused"); a
    profile without that table: one elementwise pass of rows·width·3 bytes per kernel (two
    for a dynamic scale, which reads the activation once more for its amax)."""
    if op.dtype not in ("fp8", "int8") or op.kind not in (MATMUL, GROUPED) \
            or model.quant_in_linear:
        return 0.0
    rows, width = quant_rows_width(op)
    scheme = "fused" if engine.fused_quant else (scheme or "dynamic-token")
    t = model.quant_seconds(f"{op.dtype}/{scheme}", rows, width)
    if t is not None:
        return t
    passes = 1 if scheme in ("fused", "static") else 2
    return passes * model.kernel_seconds(rows * width * QUANT_BYTES)


def make_estimator(model: KernelModel, target: Rates, engine: EnginePreset,
                   act_scheme: str | None = None) -> Callable[[Op], float | None]:
    """The estimate of all `count` occurrences of an op, or None if no table covers it.

    Every op takes at least its roofline at the target's rates (no efficiency above 1)."""
    if target != model.target:
        model = KernelModel(model.tables, model.rates, target)
    memo: dict[Op, float | None] = {}

    def remembered(op: Op) -> float | None:
        """seconds(op), remembered: sweeps and the decode average meet the same ops again."""
        try:
            return memo[op]
        except KeyError:
            if len(memo) > 200_000:
                memo.clear()
            result = memo[op] = seconds(op)
            return result
        except TypeError:  # an op with an unhashable field
            return seconds(op)

    def seconds(op: Op) -> float | None:
        roof = target.roofline(op.flops, op.bytes, op.dtype)
        if op.kind in (MATMUL, GROUPED):
            dense = (op.weight_dtype or op.dtype) in engine.moe_streams_dense
            t = _matmul(model, op, _table_for(op, engine), dense)
            if t is None and _table_for(op, engine) != "bf16":
                t = _matmul(model, op, "bf16", dense)
            if t is None:
                return None
            t = max(t, roof) + act_quant_seconds(model, op, engine, act_scheme)
        elif op.kind == ATTENTION and engine.fused_mla_decode and _mla_decode(op):
            t = max(model.kernel_seconds(op.bytes), target.roofline(op.flops, op.bytes, "bf16"),
                    roof)  # an fp8 cache computes in bf16; fp16 at its own peak
        elif op.kind == ATTENTION:
            t = model.attention.seconds(op, roof, engine.banded_prefill)
            if t is None:
                return None
            t = max(t, roof)
        else:
            t = max(sum(model.kernel_seconds(kernel) for kernel in engine.kernels_for(op)), 0.0)
        t += sum(model.kernel_seconds(kernel) for kernel in engine.extra_for(op))
        return op.count * t

    def attention_path(tmpl: Op) -> Callable[[float, float], float | None] | None:
        """seconds(op) as a function of (flops, bytes) for attention ops that differ from tmpl
        only in those and in shape[:2] (serve's attention, new every step): the same
        arithmetic with the table lookup done once. None where seconds takes another branch."""
        if tmpl.kind != ATTENTION or (engine.fused_mla_decode and _mla_decode(tmpl)) \
                or engine.extra.get(tmpl.name) or not hasattr(model.attention, "curve_for"):
            return None
        found = model.attention.curve_for(tmpl, engine.banded_prefill)
        if found is None:
            return lambda flops, nbytes: None
        curve, floor = found
        peak = target.peaks.get(tmpl.dtype) or target.peaks["bf16"]
        bandwidth, count = target.bandwidth, tmpl.count

        def fast(flops: float, nbytes: float) -> float:
            roof = max(flops / peak, nbytes / bandwidth)
            return count * max(max(curve(roof), floor), roof)
        return fast

    remembered.uncached = seconds  # for callers whose ops never repeat (serve's attention)
    remembered.attention_path = attention_path
    return remembered


@functools.cache
def bundled_measured() -> tuple[GpuSpec, ...]:
    """The bundled measured profiles that carry kernel tables (read once per process)."""
    profiles = (load_gpu(n) for n in bundled_names() if n.endswith("-measured"))
    return tuple(p for p in profiles if p.tables is not None and p.tables.linear)


@functools.cache
def _own_measured(name: str) -> GpuSpec | None:
    """The bundled `<name>-measured` profile, where it exists, has tables and says it measured
    this datasheet GPU: read alone, so a prediction need not parse every measured profile."""
    if f"{name}-measured" not in bundled_names():
        return None
    profile = load_gpu(f"{name}-measured")
    ok = profile.datasheet == name and profile.tables is not None and profile.tables.linear
    return profile if ok else None


def _source_for(gpu: GpuSpec) -> tuple[GpuSpec | None, str | None]:
    """The profile whose tables the estimate uses: gpu itself, else the nearest measured one."""
    if gpu.tables is not None and gpu.tables.linear:
        return gpu, None
    own = _own_measured(gpu.name)
    if own is not None:
        return own, (f"estimate derived from {own.name} (its own measured profile), scaled to "
                     f"{gpu.name}'s datasheet by the fraction of its datasheet that GPU measured")
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
    for dtype, peak in gpu.peak_flops.items():  # fractions above 1 would beat the limit
        got, spec = source.peak(dtype), sheet.peak(dtype)
        peaks[dtype] = peak * min(got / spec, 1.0) if peak and got and spec else peak
    return Rates(peaks, gpu.mem_bandwidth * min(source.mem_bandwidth / sheet.mem_bandwidth, 1.0))


BORROW_BF16 = ("fp4",)  # no calibrated table yet: bf16 efficiency at the op's own roofline


def act_scheme_of(precision: Precision) -> str | None:
    """How a W8A8 precision quantizes activations (None: it does not): the precision's own
    act_scheme, else dynamic per-token scales, the default of vLLM and SGLang checkpoints."""
    if precision.act_dtype not in ("fp8", "int8"):
        return None
    return getattr(precision, "act_scheme", None) or "dynamic-token"


_MODELS: dict[tuple, KernelModel] = {}


def kernel_model(source: GpuSpec, target: Rates) -> KernelModel:
    """The KernelModel of source's tables at target's rates, built once per process: it does
    not depend on the precision or the engine, and its time grids fill as ops are estimated."""
    key = (id(source.tables), tuple(sorted(target.peaks.items())), target.bandwidth)
    model = _MODELS.get(key)
    if model is None or model.tables is not source.tables:
        if len(_MODELS) > 64:
            _MODELS.clear()
        model = _MODELS[key] = KernelModel(
            source.tables, Rates(dict(source.peak_flops), source.mem_bandwidth), target)
    return model


def estimator_for(gpu: GpuSpec, precision: Precision, engine: str | None) -> Estimate:
    """The estimator for this GPU and engine, or None with the reason."""
    preset_ = engine_preset(engine)
    source, flag = _source_for(gpu)
    if source is None:
        return Estimate(None, preset_.name, f"no measured profile to estimate {gpu.name} from; "
                        "run `perfmodel calibrate-gpu`")
    target = _target_rates(gpu, source)
    model = kernel_model(source, target)
    needed = {table_name(d, preset_) for d in (precision.base_dtype, precision.weight_dtype)}
    needed = {d if d in model.linear or d not in BORROW_BF16 else "bf16" for d in needed}
    missing = sorted(d for d in needed if d not in model.linear)
    no_attention = not (model.attention.has("prefill") and model.attention.has("decode"))
    if missing or no_attention:
        what = ", ".join([f"linear {d}" for d in missing] + (["attention"] if no_attention else []))
        return Estimate(None, preset_.name, f"{source.name} has no measured {what} table; "
                        "run a full `perfmodel calibrate-gpu`")
    note = f"{preset_.name} engine, kernel tables of {source.name} ({source.date})"
    return Estimate(make_estimator(model, target, preset_, act_scheme_of(precision)),
                    preset_.name, note, flag)

