"""`predict --engine vllm|sglang|trtllm --tp N` costs its all-reduces by the engine's own rule,
as `serve` does (cost/custom_allreduce.py); without an engine they stay NCCL (CPU only)."""

from __future__ import annotations

import pytest

from perfmodel.api import run_predict
from perfmodel.cost.collective import collective_cost
from perfmodel.hardware.gpu import load_gpu

KW = dict(gpu="h200-measured", tp=2, batch=8, input_len=1024, output_len=64)


def collectives(report, phase):
    return [c for c in getattr(report.prediction, phase).costs if c.op.kind == "collective"]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_decode_all_reduces_take_the_engines_custom_kernel(engine):
    """At TP2 every engine's rule takes a decode all-reduce of 8 tokens (64 KiB) off NCCL:
    the estimate is below NCCL's measured one and never below the wire limit."""
    gpu = load_gpu(KW["gpu"])
    ours = collectives(run_predict("meta-llama/Llama-3.1-8B", engine=engine, **KW), "decode")
    reduces = [c for c in ours if c.op.weight_dtype == "all_reduce"]
    assert reduces
    for c in reduces:
        nccl = collective_cost(c.op, gpu, True)
        assert c.limit_s == pytest.approx(nccl.limit_s, rel=1e-12)
        assert c.limit_s <= c.estimate_s < nccl.estimate_s


def test_predict_without_a_serving_engine_keeps_nccl():
    gpu = load_gpu(KW["gpu"])
    for engine in (None, "tuned"):
        for c in collectives(run_predict("meta-llama/Llama-3.1-8B", engine=engine, **KW),
                             "decode"):
            assert c.estimate_s == pytest.approx(collective_cost(c.op, gpu, True).estimate_s,
                                                 rel=1e-12)
