"""Comparing measured records with predictions (CPU only: the records are plain JSON)."""

from __future__ import annotations

import pytest

from perfmodel.hardware.gpu import load_gpu
from perfmodel.stats import quantile
from perfmodel.validate.compare import compare, summarize


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


METHOD_1 = "torch-cudagraph 1: graph replay median, L2 flushed, eager profile for per-op kernels"


def fp8_record(**extra):
    return {**record("decode", 8, 1024, 7.28e-3), "precision": "fp8", "method": METHOD_1,
            **extra}


def test_each_record_is_predicted_with_its_own_activation_scheme():
    gpu = load_gpu("h100-sxm-measured")
    points = {s: compare(fp8_record(act_scheme=s), gpu)
              for s in ("static", "dynamic-tensor", "dynamic-token")}
    assert {s: p.act_scheme for s, p in points.items()} == {s: s for s in points}
    assert len({p.limit_s for p in points.values()}) == 1  # quantization is outside the limit
    # one cast kernel per linear against several (amax, scale, divide, cast)
    assert points["static"].estimate_s < points["dynamic-tensor"].estimate_s
    assert points["static"].estimate_s < points["dynamic-token"].estimate_s
    assert points["dynamic-tensor"].estimate_s != points["dynamic-token"].estimate_s
    # a method-1 record names no scheme: its engine quantized fp8 per tensor
    legacy = compare(fp8_record(), gpu)
    assert legacy.act_scheme == "dynamic-tensor"
    assert legacy.estimate_s == points["dynamic-tensor"].estimate_s
    assert compare(record("decode", 8, 1024, 8e-3), gpu).act_scheme is None  # bf16


def test_the_bundled_measurements_are_read_with_the_engines_schemes_of_the_time():
    from pathlib import Path

    from perfmodel.validate.compare import read_records

    data = Path(__file__).resolve().parent.parent / "docs" / "data" / "validation-h100.jsonl"
    records = read_records([data])
    gpu = load_gpu("h100-sxm-measured")
    seen = {}
    for r in records:
        if r["precision"] not in seen and r["phase"] == "decode":
            assert "act_scheme" not in r and r["method"] == METHOD_1
            seen[r["precision"]] = compare(r, gpu).act_scheme
    assert seen == {"bf16": None, "fp8": "dynamic-tensor", "int8": "dynamic-token",
                    "int4": None}


def stub_gpu_sweep(monkeypatch, seen: list):
    """validate's GPU sweep replaced by canned measurements; the precisions it got in seen."""
    import torch

    import perfmodel.validate.timing as timing
    from perfmodel.validate.measurement import Measurement

    def sweep(spec, prec, points, on_skip=print):
        seen.append(prec)
        return [Measurement(phase, b, t, 0.01, (0.01,), {"qkv": 1e-3}, 10)
                for phase, b, t in points]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(timing, "environment", lambda device="cuda": {
        "device_name": "NVIDIA H100 80GB HBM3", "torch": "x", "cuda": "x", "date": "x",
        "engine": "torch-cudagraph", "method": timing.METHOD})
    monkeypatch.setattr(timing, "sweep", sweep)


@pytest.mark.parametrize("precision, flag, scheme", [
    ("fp8", ["--act-quant", "static"], "static"),
    ("int8", ["--act-quant", "dynamic-tensor"], "dynamic-tensor"),
    ("fp8", [], "dynamic-token"),
    ("bf16", [], None),
])
def test_validate_records_the_scheme_it_measured_and_compare_reads_it_back(
        monkeypatch, tmp_path, precision, flag, scheme):
    import json

    from typer.testing import CliRunner

    from perfmodel.cli import app
    from perfmodel.validate.compare import read_records

    seen: list = []
    stub_gpu_sweep(monkeypatch, seen)
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(app, ["validate", "meta-llama/Llama-3.2-1B", "-b", "1",
                                      "-i", "1024", "--precision", precision, *flag,
                                      "--gpu", "h100-sxm-measured", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [p.act_scheme for p in seen] == [scheme]  # what the engine was built with
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and all(r["act_scheme"] == scheme for r in lines)
    gpu = load_gpu("h100-sxm-measured")
    assert [compare(r, gpu).act_scheme for r in read_records([out])] == [scheme, scheme]


@pytest.mark.parametrize("args, says", [
    (["--precision", "bf16", "--act-quant", "static"], "--act-quant applies only"),
    (["--precision", "int4", "--act-quant", "dynamic-token"], "--act-quant applies only"),
    (["--precision", "fp8", "--act-quant", "per-block"], "unknown --act-quant"),
    (["--precision", "fp8", "--act-quant", "static", "--tp", "2"], "drop --act-quant or --tp"),
])
def test_validate_checks_act_quant_before_looking_for_cuda(monkeypatch, args, says):
    import torch
    from typer.testing import CliRunner

    from perfmodel.cli import app

    def no_cuda_yet():
        raise AssertionError("validate looked for CUDA before checking --act-quant")

    monkeypatch.setattr(torch.cuda, "is_available", no_cuda_yet)
    result = CliRunner().invoke(app, ["validate", "meta-llama/Llama-3.2-1B", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]
    assert "Traceback" not in result.output
