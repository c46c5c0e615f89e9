"""The estimate's interpolation over measured tables, its edges, and missing tables (CPU only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perfmodel.cost.estimate import estimator_for, make_estimator
from perfmodel.cost.kernel_tables import KernelModel, Rates
from perfmodel.cost.engines import engine_preset
from perfmodel.hardware.gpu import AttentionTable, LinearTable, Tables, parse_gpu
from perfmodel.cost.ops import forward_ops
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload

from conftest import H100_SHEET

PEAK, BW, FLOOR = 8.0e14, 3.0e12, 3e-6
MS = (1, 16, 256, 4096)
SHAPES = ((1024, 1024), (1024, 16384), (16384, 1024), (16384, 16384))


def linear_seconds(m, k, n, w=2.0, a=2.0):
    """A synthetic GPU: each kernel costs its roofline at PEAK and BW plus a fixed floor."""
    return max(2 * m * n * k / PEAK, (n * k * w + m * k * a + m * n * 2) / BW) + FLOOR


def synthetic_tables(drop_attention=False):
    linear = {"bf16": LinearTable(MS, SHAPES, tuple(tuple(linear_seconds(m, k, n) for m in MS)
                                                    for k, n in SHAPES))}
    prefill = AttentionTable(32, 8, 128, tuple(
        (b, t, 2 * b * 32 * t * (t + 1) / 2 * 256 / PEAK + FLOOR)
        for b in (1, 4) for t in (128, 2048, 32768)))
    decode = AttentionTable(32, 8, 128, tuple(
        (b, c, (b * c * 2 * 8 * 128 * 2 + b * 2 * 32 * 128 * 2) / BW + FLOOR)
        for b in (1, 32) for c in (256, 4096, 65536)))
    elementwise = tuple((x, x / BW + FLOOR) for x in (4096.0, 1 << 20, 1 << 26, 1 << 30))
    return Tables(linear=linear, attention_prefill=None if drop_attention else prefill,
                  attention_decode=None if drop_attention else decode,
                  elementwise=elementwise, graph_launch_s=FLOOR)


def measured_gpu(**changes):
    data = {**H100_SHEET, "name": "synthetic-measured", "kind": "measured", "source": "measured",
            "peak_flops": {"bf16": PEAK, "fp16": PEAK}, "mem_bandwidth": BW}
    return replace(parse_gpu(data), tables=synthetic_tables(**changes))


def test_reproduces_a_table_point():
    model = KernelModel(synthetic_tables(), Rates({"bf16": PEAK}, BW))
    est = make_estimator(model, Rates({"bf16": PEAK}, BW), engine_preset("torch-cudagraph"))
    from perfmodel.cost.ops import Op

    op = Op("decode", "down", "matmul", 3, 2.0 * 16 * 1024 * 16384,
            1024 * 16384 * 2 + 16 * 16384 * 2 + 16 * 1024 * 2, "bf16", (16, 1024, 16384), "bf16")
    assert est(op) == pytest.approx(3 * linear_seconds(16, 16384, 1024), rel=1e-9)


def test_between_points_the_estimate_lies_between_neighbours():
    model = KernelModel(synthetic_tables(), Rates({"bf16": PEAK}, BW))
    eff = model.linear["bf16"]
    lo, hi = eff(16, 1024, 1024), eff(256, 1024, 1024)
    assert min(lo, hi) <= eff(64, 1024, 1024) <= max(lo, hi)


def test_outside_the_table_efficiency_is_clamped():
    model = KernelModel(synthetic_tables(), Rates({"bf16": PEAK}, BW))
    eff = model.linear["bf16"]
    assert eff(1, 65536, 1024) == eff(1, 16384, 1024)
    assert eff(10**6, 1024, 1024) == eff(4096, 1024, 1024)
    # memory-bound kernels larger than the table scale with their bytes, never clamp in time
    assert model.kernel_seconds(8 * 2.0**30) == pytest.approx(8 * 2.0**30 / BW, rel=0.01)
    assert model.kernel_seconds(1.0) == FLOOR


def test_estimate_never_below_limit_and_positive(llama8b):
    gpu = measured_gpu()
    est = estimator_for(gpu, preset("bf16"), None)
    assert est.estimator is not None and est.flag is None
    pred = predict(llama8b, preset("bf16"), gpu, Workload(4, 2000, 16), est.estimator)
    for phase in (pred.prefill, pred.decode):
        for c in phase.costs:
            assert c.estimate_s >= c.limit_s * 0.999, c.op.name
    assert pred.estimate["itl_s"] > pred.limit["itl_s"]


def test_missing_tables_give_null_with_reason():
    gpu = measured_gpu(drop_attention=True)
    est = estimator_for(gpu, preset("bf16"), None)
    assert est.estimator is None and "attention" in est.note
    est = estimator_for(measured_gpu(), preset("fp8"), None)
    assert est.estimator is None and "linear fp8" in est.note


def test_unknown_engine_is_a_clear_error():
    from perfmodel.errors import WorkloadError

    with pytest.raises(WorkloadError, match="torch-cudagraph"):
        engine_preset("trt")


def test_tuned_engine_is_never_slower_than_torch(llama8b):
    gpu = measured_gpu()
    w = Workload(8, 1024, 8)
    times = {}
    for engine in ("torch-cudagraph", "tuned"):
        est = estimator_for(gpu, preset("bf16"), engine)
        times[engine] = predict(llama8b, preset("bf16"), gpu, w, est.estimator).estimate
    assert times["tuned"]["itl_s"] < times["torch-cudagraph"]["itl_s"]
    assert times["tuned"]["ttft_s"] < times["torch-cudagraph"]["ttft_s"]


def test_elementwise_ops_count_their_kernels(llama8b):
    """Unfused RoPE launches five kernels per tensor, so at decode it costs ≥ 10 floors."""
    gpu = measured_gpu()
    est = estimator_for(gpu, preset("bf16"), "torch-cudagraph").estimator
    rope = next(op for op in forward_ops(llama8b, preset("bf16"), "decode", 1, 1, 100)
                if op.name == "rope")
    assert est(rope) >= 10 * FLOOR * rope.count
