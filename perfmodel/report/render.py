"""Renderers of one Prediction: the documented JSON schema (base units) and rich tables."""

from __future__ import annotations

import math
from typing import Any

from perfmodel.cost.predict import Phase, Prediction
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
            "estimate_s": c.estimate_s}


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


def si(value: float | None, unit: str, sep: str = " ") -> str:
    """3 significant digits with an SI prefix: 4.52 ms, 1.05 GB, 989 TFLOP/s."""
    if value is None:
        return "—"
    if value == 0:
        return f"0{sep}{unit}"
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]
    for scale, prefix in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{sep}{prefix}{unit}"
    return f"{value:.3g}{sep}{unit}"


def summary_rows(pred: Prediction) -> list[tuple[str, str, str]]:
    """(metric, limit, estimate) rows for the summary table."""
    lim, est = pred.limit, pred.estimate or {}
    rows = [("TTFT", "ttft_s", "s"), ("ITL (mean decode step)", "itl_s", "s"),
            ("throughput (output tokens)", "throughput_tok_s", "tok/s"),
            ("decode tokens/s (B / ITL)", "decode_tok_s", "tok/s")]
    return [(label, si(lim.get(key), unit), si(est.get(key), unit)) for label, key, unit in rows]


def op_rows(phase: Phase, matmul_only: bool) -> list[tuple[str, ...]]:
    """One row per op: name, count, FLOPs, bytes, intensity, bound, limit, estimate, share."""
    total = phase.limit_s or 1.0
    rows = []
    for c in phase.costs:
        op = c.op
        if matmul_only and op.kind not in MATMUL_KINDS:
            continue
        rows.append((op.name, str(op.count), si(op.count * op.flops, "", ""),
                     si(op.count * op.bytes, "", ""), f"{op.intensity:.3g}", c.bound,
                     si(c.limit_s, "s"), si(c.estimate_s, "s"), f"{100 * c.limit_s / total:.1f}%"))
    return rows
