"""TensorRT-LLM runs the residual add + RMSNorm after a TP all-reduce inside its custom
all-reduce kernel (cost/custom_allreduce.py fused_norms): where that kernel takes the
all-reduce, the layer's two norms cost nothing of their own, in serve's step and in predict
--engine trtllm (CPU only)."""

from __future__ import annotations

import pytest

from perfmodel.cost.parallel import Parallel
from perfmodel.cost.precision import preset
from perfmodel.hardware.gpu import load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config
from perfmodel.serve.ranks import layout
from perfmodel.serve.step_cost import StepCost


def step_cost(tp: int, engine: str) -> tuple[StepCost, list]:
    from perfmodel.cost.estimate import estimator_for

    gpu, prec = load_gpu("h200-measured"), preset("bf16")
    cfg = load_model_config("meta-llama/Llama-3.1-8B")
    lay = layout(model_spec(cfg.config, cfg.where), prec, gpu, Parallel(tp=tp))
    est = estimator_for(gpu, prec, "trtllm").estimator
    cost = StepCost(lay.local, prec, gpu, est, max_tokens=512, max_seqs=32, capture_sizes=(),
                    pad_mixed=False, host_overhead_s=0.0, forward=lay.forward,
                    allreduce=engine)
    return cost, lay


def norms_seconds(cost: StepCost, lay, tokens: int) -> float:
    ops = lay.forward(lay.local, preset("bf16"), "prefill", 1, tokens, 1)
    return sum(cost._costs(op)[0] for op in ops if op.name in ("attn_norm", "mlp_norm"))


@pytest.mark.parametrize("tp, tokens, fused", [(2, 8, True), (2, 262, True), (4, 8, True),
                                               (4, 262, False)])
def test_norms_ride_in_the_custom_all_reduce(tp, tokens, fused):
    """At 2 GPUs TensorRT-LLM's custom kernel takes every all-reduce under its 16·10⁶ B
    workspace; above 2 only steps of ≤ 128 tokens (262 is a point of the step's M grid). The step with the fusion is faster by
    exactly the two norms' estimate where fused, and the same where NCCL takes it."""
    trt, lay = step_cost(tp, "trtllm")
    plain, _ = step_cost(tp, "vllm")  # the same kernels' norms, no fusion rule
    norms = norms_seconds(trt, lay, tokens)
    saved = plain.linear(tokens, False)[0] - trt.linear(tokens, False)[0]
    assert norms > 0
    if fused:
        assert saved == pytest.approx(norms + _ar_difference(tp, tokens, lay), rel=1e-6)
    else:
        assert saved == pytest.approx(_ar_difference(tp, tokens, lay), abs=1e-12)


def _ar_difference(tp: int, tokens: int, lay) -> float:
    """vLLM's and TensorRT-LLM's all-reduce rules differ in which sizes go custom; their
    collectives' estimates differ by this much at `tokens` (zero where both rules agree)."""
    trt, _ = step_cost(tp, "trtllm")
    plain, _ = step_cost(tp, "vllm")
    ops = [op for op in lay.forward(lay.local, preset("bf16"), "prefill", 1, tokens, 1)
           if op.kind == "collective"]
    return sum(plain._costs(op)[0] - trt._costs(op)[0] for op in ops)


def test_one_gpu_has_nothing_to_fuse():
    trt, _ = step_cost(1, "trtllm")
    plain, _ = step_cost(1, "vllm")
    assert trt.linear(64, False) == plain.linear(64, False)


@pytest.mark.parametrize("tp, batch, fused", [(2, 8, True), (4, 8, True), (4, 256, False)])
def test_predict_engine_trtllm_fuses_the_same_norms(tp, batch, fused):
    """`predict --engine trtllm --tp N` applies serve's rule: decode norms cost nothing where the
    custom kernel takes the step's all-reduce (≤ 128 tokens above 2 GPUs), vLLM's always do."""
    from perfmodel.api import run_predict

    def norms(engine):
        rep = run_predict("meta-llama/Llama-3.1-8B", gpu="h200-measured", engine=engine,
                          batch=batch, input_len=512, output_len=8, tp=tp)
        costs = [c for c in rep.prediction.decode.costs
                 if c.op.name in ("attn_norm", "mlp_norm")]
        assert costs and all(c.limit_s > 0 for c in costs)  # the roofline stays shown
        return sum(c.estimate_s for c in costs)

    assert norms("vllm") > 0
    assert (norms("trtllm") == 0) == fused
