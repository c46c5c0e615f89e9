"""Predicted against measured: compare `perfmodel validate` records with limit and estimate.

Pure Python (no torch): the records are JSON lines that perfmodel.validate wrote on a GPU box,
so the comparison, its statistics and docs/validation.md are reproducible on any machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from perfmodel.model.architectures import model_spec
from perfmodel.model.spec import ModelSpec
from perfmodel.model.source import load_model_config
from perfmodel.cost.estimate import estimator_for
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.cost.precision import Precision, preset, with_act_scheme, with_kv
from perfmodel.cost.parallel import Parallel
from perfmodel.cost.predict import step
from perfmodel.stats import quantile
from perfmodel.validate.measurement import record_scheme


@dataclass(frozen=True)
class Point:
    """One measured forward beside its prediction (seconds)."""

    model: str
    precision: str
    device: str
    phase: str
    batch: int
    tokens: int
    measured_s: float
    limit_s: float
    estimate_s: float | None
    ops: tuple[tuple[str, float, float | None, float | None], ...]  # name, limit, est, measured
    act_scheme: str | None = None  # how fp8/int8 activations were quantized (None: not at all)

    @property
    def estimate_error(self) -> float | None:
        """(estimate − measured) / measured."""
        if self.estimate_s is None:
            return None
        return (self.estimate_s - self.measured_s) / self.measured_s

    @property
    def limit_ratio(self) -> float:
        """limit / measured: never above 1 for a correct model and calibration."""
        return self.limit_s / self.measured_s


def compare(record: dict[str, Any], gpu: GpuSpec, engine: str | None = None) -> Point:
    """The prediction for one measured record: same model, precision, activation scheme
    (record_scheme), phase, batch, tokens.

    The engine keeps its KV cache in bf16 at every precision, so the prediction does too.
    """
    cfg = load_model_config(record["model"]).config
    spec = model_spec(cfg)
    prec = with_kv(record_precision(record), record.get("kv_dtype") or "bf16")
    est = estimator_for(gpu, prec, engine).estimator
    par = Parallel(tp=int(record.get("tp", 1)))  # validate --tp records (validate/distributed.py)
    phase = step(spec, prec, gpu, record["phase"], record["batch"], record["tokens"], est,
                 parallel=par)
    measured_ops = record.get("op_seconds") or {}
    ops = tuple((c.op.name, c.limit_s, c.estimate_s, measured_ops.get(c.op.name))
                for c in phase.costs)
    return Point(record["model"], record["precision"], record.get("device_name", ""),
                 record["phase"], record["batch"], record["tokens"], record["seconds"],
                 phase.limit_s, phase.estimate_s, ops, prec.act_scheme)


def check_args(model: str, precision: str, gpu: str | None, out: Path | None,
               act_quant: str | None = None, tp: int = 1) -> None:
    """validate's model, precision, --act-quant, --gpu and --out, checked before it looks for a
    CUDA GPU."""
    from perfmodel.errors import WorkloadError
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.outpath import check_out_path, input_files

    cfg = load_model_config(model)
    model_spec(cfg.config, cfg.where)
    if preset(precision).weight_dtype not in ("bf16", "fp16", "fp8", "int8", "int4"):
        raise WorkloadError(f"validate's torch engine runs bf16, fp16, fp8, int8 or int4 "
                            f"(validate/engine.py), not {precision!r}; pass one of those")
    with_act_scheme(preset(precision), act_quant)
    if act_quant is not None and tp > 1:
        raise WorkloadError("validate --tp measures at the default activation scheme only; "
                            "drop --act-quant or --tp")
    if gpu is not None:
        load_gpu(gpu)
    if out is not None:
        check_out_path(out, folder_ok=False, inputs=input_files(model, gpu))


def spec_and_precision(model: str, precision: str, kv_dtype: str = "bf16"
                       ) -> tuple[ModelSpec, Precision]:
    """A model's spec and a precision preset with its KV-cache dtype."""
    return model_spec(load_model_config(model).config), with_kv(preset(precision), kv_dtype)


def record_precision(record: dict[str, Any]) -> Precision:
    """The precision a record was measured at, its activation scheme included."""
    return with_act_scheme(preset(record["precision"]), record_scheme(record),
                           source="measured")


def read_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


@dataclass(frozen=True)
class Summary:
    points: int
    median_abs_error: float
    p90_abs_error: float
    worst_error: float
    limit_beaten: int  # points where the limit exceeds the measurement


def summarize(points: list[Point]) -> Summary:
    errors = [abs(p.estimate_error) for p in points if p.estimate_error is not None]
    signed = [p.estimate_error for p in points if p.estimate_error is not None]
    return Summary(len(points), quantile(errors, 0.5), quantile(errors, 0.9),
                   max(signed, key=abs) if signed else math.nan,
                   sum(p.limit_ratio > 1 for p in points))


def default_gpu_profile(device_name: str) -> str:
    """The bundled measured profile for the GPU `perfmodel validate` runs on."""
    name = device_name.upper()
    if "H200" in name:
        return "h200-measured"
    if "H100" in name and "PCIE" not in name:
        return "h100-sxm-measured"
    from perfmodel.errors import GpuProfileError

    raise GpuProfileError(f"no bundled measured profile for {device_name}; run `perfmodel "
                          "calibrate-gpu --out box.yaml` and pass --gpu box.yaml")


def measure(model: str, precision: str, batches: list[int], input_lens: list[int], *,
            max_prefill_tokens: int = 32768, out: Path | None = None, on_note=print,
            act_quant: str | None = None) -> list[dict[str, Any]]:
    """Measure decode (B, C = I) for every B and I, and prefill (B, I) where B·I is at most
    max_prefill_tokens, on this CUDA GPU, fp8/int8 activations quantized by act_quant (default:
    the precision's, dynamic-token); every record names its act_scheme.

    One engine per (B, I), so its KV cache is sized for that point only; torch is imported here.
    """
    prec = with_act_scheme(preset(precision), act_quant)  # a bad scheme fails before CUDA
    import torch

    from perfmodel.errors import PerfmodelError
    from perfmodel.validate.timing import environment, free_memory, sweep

    if not torch.cuda.is_available():
        raise PerfmodelError("perfmodel validate measures on a CUDA GPU and torch sees none here; "
                             "run it on the GPU box (predict needs no GPU)")

    cfg = load_model_config(model)
    spec = model_spec(cfg.config)
    header = {"model": cfg.model_id, "precision": prec.name, "act_scheme": prec.act_scheme,
              "kv_dtype": prec.base_dtype, **environment("cuda")}
    records = []
    for batch in batches:
        for length in input_lens:
            points = [("prefill", batch, length)] if batch * length <= max_prefill_tokens else []
            points.append(("decode", batch, length))
            try:
                measured = sweep(spec, prec, points, on_skip=on_note)
            except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
                if "out of memory" not in str(error).lower():
                    raise
                free_memory()
                on_note(f"skipped batch={batch} length={length}: the engine does not fit")
                continue
            for m in measured:
                record = {**header, **m.to_dict()}
                records.append(record)
                if out is not None:
                    with open(out, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
    return records
