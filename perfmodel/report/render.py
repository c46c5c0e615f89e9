"""Renderers of one Prediction: the documented JSON schema (base units) and rich tables."""

from __future__ import annotations

import math
from typing import Any

from perfmodel.cost.phases import Phase, Prediction
from perfmodel.cost.roofline import OpCost

MATMUL_KINDS = ("matmul", "grouped_matmul", "attention")


def _num(x: float | None) -> float | None:
    """JSON has no Infinity or NaN: those become null."""
    return None if x is None or not math.isfinite(x) else x


def op_record(c: OpCost) -> dict[str, Any]:
    op = c.op
    return {"phase": op.phase, "name": op.name, "kind": op.kind, "count": op.count,
            "flops": op.count * op.flops, "bytes": op.count * op.bytes,
            "intensity": _num(op.intensity), "dtype": op.dtype, "bound": c.bound,
            "compute_s": c.compute_s, "memory_s": c.memory_s, "limit_s": c.limit_s,
            "estimate_s": c.estimate_s, "group": op.group, "fusable": op.fusable}


def to_json(pred: Prediction, *, model_id: str, model_source: str,
            estimate_note: str | None = None, matmul_only: bool = False) -> dict[str, Any]:
    """The `--json` document (docs/json.md): SI base units, null where a value does not exist."""
    spec, gpu, w, mem, prec = pred.spec, pred.gpu, pred.workload, pred.memory, pred.precision
    phases = [pred.prefill] + ([pred.decode] if pred.decode else [])
    ops = [op_record(c) for ph in phases for c in ph.costs
           if not matmul_only or c.op.kind in MATMUL_KINDS]
    return {
        "model": {"id": model_id, "source": model_source, "model_type": spec.model_type,
                  "params_total": spec.params.total, "params_active": spec.params.active,
                  "layers": spec.num_layers, "hidden_size": spec.hidden_size,
                  "vocab_size": spec.vocab_size, "moe": spec.is_moe},
        "precision": {"name": prec.name, "source": prec.source, "weight": prec.weight_dtype,
                      "weight_bytes": prec.weight_bytes, "activation": prec.act_dtype,
                      "compute": prec.compute_dtype, "kv_cache": prec.kv_dtype,
                      "quantized": prec.scope, "act_scheme": prec.act_scheme,
                      "act_scheme_source": prec.act_source or None,
                      "kv_cache_source": prec.kv_source,
                      "weight_scales": prec.weight_scales or None,
                      "label": prec.label},
        "gpu": {"name": gpu.name, "source": gpu.provenance, "kind": gpu.kind,
                "peak_flops": dict(gpu.peak_flops), "mem_bandwidth": gpu.mem_bandwidth,
                "mem_bytes": gpu.mem_bytes},
        "workload": {"batch": w.batch, "input_len": w.input_len, "output_len": w.output_len},
        "limit": {k: _num(v) for k, v in pred.limit.items()},
        "estimate": None if pred.estimate is None else
        {**{k: _num(v) for k, v in pred.estimate.items()}, "note": estimate_note},
        "estimate_reason": estimate_note if pred.estimate is None else None,
        "memory": {"weights_bytes": mem.weights_bytes,
                   "kv_bytes_per_token": mem.kv_bytes_per_token, "kv_bytes": mem.kv_bytes,
                   "gpu_bytes": mem.gpu_bytes, "fits": mem.fits, "max_batch": mem.max_batch},
        "ops": ops,
    }


# How numbers are printed (README, docs/json.md): 3 significant digits; seconds as s, ms, µs, ns
# (never ks: 1,990 s); rates such as tok/s as plain numbers with thousands separators
# (0.254 tok/s, 2,280 tok/s, 16,700,000 tok/s: never mtok/s, ktok/s); bytes, FLOP, FLOP/s and
# B/s with k, M, G, T, P only (never m for milli); parameter counts as 8.03B, 135M.
_BIG = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_SMALL = ((1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
_PREFIXED = ("B", "FLOP", "FLOP/s", "B/s", "")


def _round3(value: float) -> float:
    """value rounded to 3 significant digits (so 999.7 becomes 1000 before a prefix is chosen)."""
    return float(f"{value:.3g}")


def plain(value: float) -> str:
    """At most 3 significant digits written out, thousands separated: 16,700,000; 912; 0.25."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    value = _round3(value)
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def seconds(value: float | None, sep: str = " ") -> str:
    """A duration: 1,990 s; 14.4 s; 28.1 ms; 7.75 µs; 349 ns."""
    if value is None:
        return "—"
    rounded = _round3(value)
    for scale, prefix in _SMALL:
        if abs(rounded) >= scale:
            return f"{plain(rounded / scale)}{sep}{prefix}s"
    return f"{plain(rounded / 1e-9)}{sep}ns" if rounded else f"0{sep}s"


def si(value: float | None, unit: str, sep: str = " ") -> str:
    """A number with its unit, by the convention above: 4.52 ms, 1.05 GB, 989 TFLOP/s, 912 tok/s."""
    if value is None:
        return "—"
    if unit == "s":
        return seconds(value, sep)
    if unit not in _PREFIXED:
        return f"{plain(value)}{sep}{unit}"
    rounded = _round3(value)
    for scale, prefix in _BIG:
        if abs(rounded) >= scale:
            return f"{plain(rounded / scale)}{sep}{prefix}{unit}"
    return f"{plain(rounded)}{sep}{unit}"


def params(count: int) -> str:
    """A parameter count as models are named: 8.03B, 671B, 135M."""
    if count >= 1e9:
        return f"{plain(count / 1e9)}B"
    return f"{plain(count / 1e6)}M" if count >= 1e6 else plain(count)


def summary_rows(pred: Prediction) -> list[tuple[str, str, str]]:
    """(metric, limit, estimate) rows for the summary table."""
    lim, est = pred.limit, pred.estimate or {}
    rows = [("TTFT", "ttft_s", "s"), ("ITL (mean decode step)", "itl_s", "s"),
            ("throughput (output tokens)", "throughput_tok_s", "tok/s"),
            ("decode tokens/s (B / ITL)", "decode_tok_s", "tok/s")]
    return [(label, si(lim.get(key), unit), si(est.get(key), unit)) for label, key, unit in rows]


def op_rows(phase: Phase, matmul_only: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(group, cells) per op; cells: name, count, FLOPs, bytes, intensity, bound, limit,
    estimate, share. share is of the phase's limit, which sums the matmul and attention ops; a
    fusable (elementwise) op is outside it and shows what it would add, as "+0.8%"."""
    total = phase.limit_s or 1.0
    rows = []
    for c in phase.costs:
        op = c.op
        if matmul_only and op.kind not in MATMUL_KINDS:
            continue
        share = f"{'+' if op.fusable else ''}{100 * c.limit_s / total:.1f}%"
        rows.append((op.group, (op.name, str(op.count), si(op.count * op.flops, "", ""),
                                si(op.count * op.bytes, "", ""), plain(op.intensity), c.bound,
                                si(c.limit_s, "s"), si(c.estimate_s, "s"), share)))
    return rows
