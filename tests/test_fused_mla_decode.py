"""MLA decode in the serving engines (EnginePreset.fused_mla_decode): one fused kernel that reads
the latent cache once, timed as one contiguous pass over its minimal bytes or its FLOPs at the
measured bf16 peak, whichever is longer; the torch engine keeps the MLA tables (CPU only)."""

from __future__ import annotations

import pytest

from perfmodel.cost.presets import engine_preset
from perfmodel.cost.estimate import _target_rates, estimator_for, kernel_model
from perfmodel.cost.ops import ATTENTION, forward_ops
from perfmodel.cost.precision import preset
from perfmodel.hardware.gpu import load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config

GPU = "h200-measured"


def mla_ops(phase: str, batch: int, context: int):
    cfg = load_model_config("deepseek-ai/DeepSeek-V3")
    spec = model_spec(cfg.config, cfg.where)
    return [op for op in forward_ops(spec, preset("fp8"), phase, batch, 1 if phase == "decode"
                                     else context, context) if op.kind == ATTENTION]


def test_the_serving_engines_run_fused_mla_decode():
    assert all(engine_preset(e).fused_mla_decode for e in ("vllm", "sglang", "trtllm"))
    assert not engine_preset("torch-cudagraph").fused_mla_decode


@pytest.mark.parametrize("batch,context", [(1, 1024), (64, 4096), (256, 32768)])
def test_mla_decode_is_one_pass_or_bf16_compute(batch, context):
    gpu = load_gpu(GPU)
    model = kernel_model(gpu, _target_rates(gpu, gpu))
    estimate = estimator_for(gpu, preset("fp8"), "sglang").estimator
    for op in mla_ops("decode", batch, context):
        one_pass = model.kernel_seconds(op.bytes)
        compute = op.flops / min(gpu.peak_flops["bf16"], gpu.peak_flops[op.dtype])
        assert estimate(op) == pytest.approx(op.count * max(one_pass, compute,
                                                            op.bytes / gpu.mem_bandwidth))
        assert estimate(op) >= op.count * op.bytes / gpu.mem_bandwidth * (1 - 1e-12)


def test_prefill_and_the_torch_engine_keep_the_tables():
    gpu = load_gpu(GPU)
    model = kernel_model(gpu, _target_rates(gpu, gpu))
    sglang, torch_ = (estimator_for(gpu, preset("fp8"), e).estimator
                      for e in ("sglang", "torch-cudagraph"))
    for op in mla_ops("prefill", 1, 2048):  # prefill: the attention tables, as before
        roof = max(op.flops / gpu.peak_flops[op.dtype], op.bytes / gpu.mem_bandwidth)
        table = max(model.attention.seconds(op, roof, banded=True), roof)
        assert sglang(op) == pytest.approx(op.count * table, rel=1e-12)
    decode = mla_ops("decode", 64, 4096)
    assert all(torch_(op) > sglang(op) for op in decode)  # the tables' absorbed-bmm path
