"""The limit is never beaten by real serving engines (vLLM, SGLang, TensorRT-LLM on H100/H200).

Reads ../shared/external/aiconfigurator-silicon (Apache-2.0 data, not copied here): every
single-GPU, aggregated-serving row of a model we bundle. At concurrency c an engine decodes at
most min(c, what fits in memory) sequences per step, so the ITL limit at that batch must not
exceed the measured time per output token; TTFT (which includes queueing) must not beat one
sequence's prefill limit.
"""

from __future__ import annotations

import csv

import pytest

from perfmodel.api import run_predict
from conftest import SHARED

CSV = SHARED / "external" / "aiconfigurator-silicon" / "silicon-h100-h200.csv"
MODELS = {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
          "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B",
          "Qwen/Qwen3-32B": "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
          "openai/gpt-oss-120b": "openai/gpt-oss-120b"}
PRECISION = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": None}  # None: the config's
GPUS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200"}


def rows():
    if not CSV.exists():
        return []
    return [r for r in csv.DictReader(CSV.open())
            if r["mode"] == "agg" and r["tp_size"] == "1" and r["pp_size"] == "1"
            and r["model_path"] in MODELS and r["gemm_quant_mode"] in PRECISION]


@pytest.mark.skipif(not CSV.exists(), reason="../shared/external not beside this checkout")
def test_limits_never_beaten_by_serving_engines():
    checked = 0
    for r in rows():
        model, gpu = MODELS[r["model_path"]], GPUS[r["system"]]
        prec = PRECISION[r["gemm_quant_mode"]]
        isl, osl, conc = int(r["isl"]), int(r["osl"]), int(r["batch_size"])
        fit = run_predict(model, gpu=gpu, precision=prec, batch=conc, input_len=isl,
                          output_len=osl).prediction.memory.max_batch
        batch = max(1, min(conc, fit))
        itl = run_predict(model, gpu=gpu, precision=prec, batch=batch, input_len=isl,
                          output_len=osl).prediction.limit["itl_s"]
        ttft = run_predict(model, gpu=gpu, precision=prec, batch=1, input_len=isl,
                           output_len=2).prediction.limit["ttft_s"]
        where = f"{r['backend']} {model} {prec} {gpu} c={conc} {isl}/{osl}"
        assert itl <= float(r["silicon_tpot_ms"]) / 1e3, where
        assert ttft <= float(r["silicon_ttft_ms"]) / 1e3, where
        checked += 1
    assert checked >= 150
