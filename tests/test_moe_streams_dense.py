"""The serving engines' fused MoE (EnginePreset.moe_streams_dense): a memory-bound grouped expert
GEMM is timed as the better of the grouped table and one dense GEMM over the touched experts'
columns, for the weight formats each engine's tuned kernel covers; compute-bound ones and the
torch engine keep the grouped table (CPU only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perfmodel.api import resolve_precision
from perfmodel.cost.presets import engine_preset
from perfmodel.cost.estimate import _matmul, _target_rates, estimator_for, kernel_model
from perfmodel.cost.ops import GROUPED, forward_ops
from perfmodel.cost.precision import preset
from perfmodel.hardware.gpu import load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config

GPU = "h200-measured"


def grouped_ops(model: str, phase: str, batch: int, tokens: int):
    cfg = load_model_config(model)
    spec = model_spec(cfg.config, cfg.where)
    return [op for op in forward_ops(spec, preset("bf16"), phase, batch, tokens, 2048)
            if op.kind == GROUPED]


def seconds(engine: str, op) -> float:
    return estimator_for(load_gpu(GPU), preset("bf16"), engine).estimator(op)


def test_which_engines_stream_which_expert_weights_as_dense():
    """TensorRT-LLM's CUTLASS MoE for every format; vLLM's and SGLang's tuned Triton fused_moe
    for all but the 4-bit formats (Marlin / triton_kernels); the torch engine never."""
    trt, torch_ = engine_preset("trtllm"), engine_preset("torch-cudagraph")
    assert {"bf16", "fp8", "int4", "mxfp4"} <= trt.moe_streams_dense
    for name in ("vllm", "sglang"):
        streams = engine_preset(name).moe_streams_dense
        assert {"bf16", "fp8"} <= streams and not streams & {"int4", "mxfp4", "fp4"}
    assert not torch_.moe_streams_dense


def test_four_bit_experts_keep_the_grouped_table_in_vllm():
    """gpt-oss-120b's mxfp4 experts: vLLM's estimate is the grouped table's, TensorRT-LLM's
    never worse; its bf16 and fp8 experts (Qwen3-30B-A3B) stream as TensorRT-LLM's do."""
    gpu = load_gpu(GPU)
    cfg = load_model_config("openai/gpt-oss-120b")
    spec = model_spec(cfg.config, cfg.where)
    prec = resolve_precision(cfg.config, None, None, gpu=gpu)
    ops = [op for op in forward_ops(spec, prec, "decode", 32, 1, 2048) if op.kind == GROUPED]
    assert ops and all(op.weight_dtype == "mxfp4" for op in ops)
    vllm_, plain = (estimator_for(gpu, prec, e).estimator for e in ("vllm", "torch-cudagraph"))
    trt = estimator_for(gpu, prec, "trtllm").estimator
    for op in ops:
        assert trt(op) <= vllm_(op) * (1 + 1e-12)
    for op in grouped_ops("Qwen/Qwen3-30B-A3B", "decode", 8, 1):
        assert seconds("vllm", op) == pytest.approx(seconds("trtllm", op), rel=0.05)


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_memory_bound_decode_takes_the_better_of_grouped_and_dense(batch):
    gpu = load_gpu(GPU)
    for op in grouped_ops("Qwen/Qwen3-30B-A3B", "decode", batch, 1):
        trt, vllm = seconds("trtllm", op), seconds("torch-cudagraph", op)
        limit = op.flops / gpu.peak_flops["bf16"], op.bytes / gpu.mem_bandwidth
        assert trt <= vllm * (1 + 1e-12)  # never worse than the grouped table
        assert trt >= max(limit) * op.count * (1 - 1e-12)  # never below the roofline


def test_the_dense_stand_in_is_one_matmul_over_the_touched_columns():
    gpu = load_gpu(GPU)
    model = kernel_model(gpu, _target_rates(gpu, gpu))
    op = grouped_ops("Qwen/Qwen3-30B-A3B", "decode", 8, 1)[0]
    per_expert, n, k, touched = op.shape
    row = op.row_bytes or 2.0 * (k + n)
    weights = op.bytes - per_expert * touched * row
    dense = model.matmul("bf16", per_expert, n * touched, k, weights, row * touched, op.dtype)
    grouped = _matmul(model, op, "bf16")
    assert dense is not None and grouped is not None
    assert _matmul(model, op, "bf16", moe_streams_dense=True) == \
        pytest.approx(min(grouped, dense), rel=1e-12)


def test_compute_bound_prefill_keeps_the_grouped_table():
    for op in grouped_ops("Qwen/Qwen3-30B-A3B", "prefill", 4, 4096):
        assert seconds("trtllm", op) == pytest.approx(seconds("vllm", op), rel=1e-12)
        assert seconds("sglang", op) == pytest.approx(seconds("vllm", op), rel=1e-12)
