"""Comparing measured records with predictions (CPU only: the records are plain JSON)."""

from __future__ import annotations

import pytest

from perfmodel.gpu import load_gpu
from perfmodel.validation import compare, quantile, summarize


def record(phase, batch, tokens, seconds):
    return {"model": "meta-llama/Llama-3.1-8B", "precision": "bf16", "kv_dtype": "bf16",
            "device_name": "NVIDIA H100 80GB HBM3", "phase": phase, "batch": batch,
            "tokens": tokens, "seconds": seconds, "op_seconds": {"qkv": 1e-3}}


def test_compare_predicts_the_same_forward():
    gpu = load_gpu("h100-sxm")
    p = compare(record("decode", 1, 1024, 8.33e-3), gpu)
    # one decode step at C = 1024: weights but the embedding table, plus 1024 tokens of KV
    read = 8.0303e9 * 2 - 128256 * 4096 * 2 + 1024 * 32 * 2 * 8 * 128 * 2
    assert p.limit_s == pytest.approx(read / 3.35e12, rel=0.01)
    assert p.limit_ratio < 1 and dict((n, m) for n, _, _, m in p.ops)["qkv"] == 1e-3
    prefill = compare(record("prefill", 1, 1024, 28.9e-3), gpu)
    assert prefill.limit_s > p.limit_s


def test_quantile_and_summary():
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    gpu = load_gpu("h100-sxm")
    points = [compare(record("decode", 1, 1024, s), gpu) for s in (8e-3, 1e-3)]
    s = summarize(points)
    assert s.points == 2 and s.limit_beaten == 1  # 1 ms is faster than any roofline allows
