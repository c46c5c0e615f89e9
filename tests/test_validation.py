"""Comparing measured records with predictions (CPU only: the records are plain JSON)."""

from __future__ import annotations

import pytest

from perfmodel.hardware.gpu import load_gpu
from perfmodel.validate.compare import compare, quantile, summarize


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


def test_validate_cli_flow_with_a_stub_engine(monkeypatch, tmp_path):
    """perfmodel validate end to end on the CPU, the GPU sweep replaced by canned measurements."""
    import json

    import torch
    from typer.testing import CliRunner

    import perfmodel.validate.timing as timing
    from perfmodel.cli import app
    from perfmodel.validate.measurement import Measurement

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(timing, "environment", lambda device="cuda": {
        "device_name": "NVIDIA H100 80GB HBM3", "torch": "x", "cuda": "x", "date": "x"})
    monkeypatch.setattr(timing, "sweep", lambda spec, prec, points, on_skip=print: [
        Measurement(phase, b, t, 0.01, (0.01,), {"qkv": 1e-3}, 10) for phase, b, t in points])
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(app, ["validate", "meta-llama/Llama-3.2-1B", "-b", "1,64",
                                      "-i", "1024", "--gpu", "h100-sxm", "--out", str(out),
                                      "--max-prefill-tokens", "2048", "--ops"],
                                env={"COLUMNS": "150"})
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["phase"], r["batch"]) for r in lines] == [("prefill", 1), ("decode", 1),
                                                         ("decode", 64)]
    assert "limit/meas." in result.output and "qkv" in result.output


def test_validate_without_cuda_is_one_line(monkeypatch):
    import torch
    from typer.testing import CliRunner

    from perfmodel.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(app, ["validate", "meta-llama/Llama-3.2-1B"])
    assert result.exit_code == 2 and "CUDA GPU" in result.output
