"""TensorRT-LLM's fused MoE (EnginePreset.moe_streams_dense): a memory-bound grouped expert GEMM
is timed as the better of the grouped table and one dense GEMM over the touched experts'
columns; compute-bound ones and the other engines keep the grouped table (CPU only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perfmodel.cost.engines import engine_preset
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


def test_only_tensorrt_llm_streams_moe_weights_as_dense():
    assert engine_preset("trtllm").moe_streams_dense
    assert not engine_preset("vllm").moe_streams_dense
    assert not engine_preset("sglang").moe_streams_dense
    assert not engine_preset("torch-cudagraph").moe_streams_dense


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_memory_bound_decode_takes_the_better_of_grouped_and_dense(batch):
    gpu = load_gpu(GPU)
    for op in grouped_ops("Qwen/Qwen3-30B-A3B", "decode", batch, 1):
        trt, vllm = seconds("trtllm", op), seconds("vllm", op)
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
