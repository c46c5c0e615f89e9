"""calibrate-gpu on a real GPU (the lent H100): quick run, profile loads, peaks match reference.

Ground truth: an independent run of the same method on the lent H100
(../shared/validation/h100-peaks.json): bf16 772-775 TFLOP/s, int8 955-959 TOP/s, copy
3021 GB/s, fp8 1308-1430 TFLOP/s (it moves ~9% between runs, so only a floor is checked).
The bf16 peak depends on the card's thermal history (745-786 TFLOP/s seen here, 2026-11-21;
docs/calibration.md): run this on a card that has idled, not right after another heavy job.
Skipped where torch sees no CUDA device (conftest.py).
"""

from __future__ import annotations

import time

import pytest

from perfmodel.hardware.gpu import load_gpu

pytestmark = pytest.mark.gpu

H100 = {"bf16": 773e12, "int8": 957e12, "mem_bandwidth": 3.02e12}
H100_FP8_FLOOR = 1.30e15
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from perfmodel.calibrate import calibrate

    started = time.perf_counter()
    path = calibrate(out=tmp_path_factory.mktemp("gpu") / "quick.yaml", quick=True,
                     device="cuda:0", progress=lambda *_: None)
    return load_gpu(str(path)), time.perf_counter() - started


def test_quick_run_is_quick_and_complete(quick):
    spec, seconds = quick
    print(f"quick calibration: {seconds:.1f} s on {spec.extra['environment']['device_name']}")
    assert seconds < 90
    assert spec.kind == "measured" and spec.peak("bf16") > 1e13 and spec.mem_bandwidth > 1e11
    tables = spec.tables
    assert tables.graph_launch_s and tables.eager_launch_s
    assert tables.graph_launch_s < tables.eager_launch_s  # a graph hides the launch
    assert tables.attention_prefill.points and tables.attention_decode.points
    assert len(tables.elementwise) >= 5


def test_h100_peaks_match_the_reference(quick):
    spec, _ = quick
    if "H100" not in spec.extra["environment"]["device_name"]:
        pytest.skip("reference figures are for the H100")
    assert spec.peak("bf16") == pytest.approx(H100["bf16"], rel=TOLERANCE)
    assert spec.peak("int8") == pytest.approx(H100["int8"], rel=TOLERANCE)
    assert spec.mem_bandwidth == pytest.approx(H100["mem_bandwidth"], rel=TOLERANCE)
    assert spec.peak("fp8") >= H100_FP8_FLOOR
    assert spec.datasheet == "h100-sxm" and spec.name == "h100-sxm-measured"


def test_linear_time_grows_with_m_at_large_m(quick):
    spec, _ = quick
    for dtype, table in spec.tables.linear.items():
        for (k, n), row in zip(table.shapes, table.seconds):
            big = [(m, s) for m, s in zip(table.ms, row) if m >= 512 and s is not None]
            for (m0, s0), (m1, s1) in zip(big, big[1:]):
                assert s1 > s0 * 0.9, f"{dtype} k={k} n={n}: m={m1} {s1} vs m={m0} {s0}"
            assert big[-1][1] > big[0][1] * 3, f"{dtype} k={k} n={n}: 32x the rows, <3x time"


def test_linear_small_m_is_near_the_weight_read_time(quick):
    """At m=1 a bf16 linear reads its weight once: time >= bytes / bandwidth, within ~3x."""
    spec, _ = quick
    table = spec.tables.linear["bf16"]
    for (k, n), row in zip(table.shapes, table.seconds):
        floor = 2 * k * n / spec.mem_bandwidth
        if floor > 5e-6:  # bigger than the per-kernel overhead
            assert floor * 0.8 < row[0] < floor * 3 + 10e-6, (k, n, row[0], floor)


def test_decode_attention_grows_with_context(quick):
    spec, _ = quick
    points = {(b, c): s for b, c, s in spec.tables.attention_decode.points}
    if (1, 1024) in points and (1, 131072) in points:
        assert points[(1, 131072)] > 10 * points[(1, 1024)]
