"""Real serving measurements (../shared/external/aiconfigurator-silicon) beside our predictions.

Single-GPU, aggregated-serving rows of the models perfmodel bundles. At concurrency c an engine
decodes at most min(c, what fits in memory) sequences per step; TTFT (which includes queueing)
cannot beat one sequence's prefill.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from perfmodel.api import run_predict

CSV = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "external" / \
    "aiconfigurator-silicon" / "silicon-h100-h200.csv"
MODELS = {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
          "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B",
          "Qwen/Qwen3-32B": "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
          "openai/gpt-oss-120b": "openai/gpt-oss-120b"}
PRECISION = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": None}  # None: the config's


@dataclass(frozen=True)
class Served:
    """One serving row (seconds) and our prediction for it."""

    engine: str
    model: str
    quant: str
    system: str
    tpot_s: float
    ttft_s: float
    itl_limit_s: float
    ttft_limit_s: float
    itl_estimate_s: float | None


def rows() -> list[dict[str, str]]:
    if not CSV.exists():
        return []
    return [r for r in csv.DictReader(CSV.open())
            if (r["mode"], r["tp_size"], r["pp_size"]) == ("agg", "1", "1")
            and r["model_path"] in MODELS and r["gemm_quant_mode"] in PRECISION]


def served(row: dict[str, str], gpus: dict[str, str], engine: str | None = None) -> Served:
    """Predict one row on gpus[row's system]: the ITL at the concurrency capped by memory,
    the TTFT of one sequence."""
    model = MODELS[row["model_path"]]
    kw = dict(gpu=gpus[row["system"]], precision=PRECISION[row["gemm_quant_mode"]],
              input_len=int(row["isl"]), engine=engine)
    conc, osl = int(row["batch_size"]), int(row["osl"])
    fit = run_predict(model, batch=conc, output_len=osl, **kw).prediction.memory.max_batch
    pred = run_predict(model, batch=max(1, min(conc, fit)), output_len=osl, **kw).prediction
    first = run_predict(model, batch=1, output_len=2, **kw).prediction
    return Served(row["backend"], model, row["gemm_quant_mode"] or "bf16", row["system"],
                  float(row["silicon_tpot_ms"]) / 1e3, float(row["silicon_ttft_ms"]) / 1e3,
                  pred.limit["itl_s"], first.limit["ttft_s"],
                  pred.estimate["itl_s"] if pred.estimate else None)
