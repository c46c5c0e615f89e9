"""calibrate-gpu on a real GPU (the lent H100): quick run, profile loads, peaks match reference,
and the method v2 tables against physics: no kernel beats the datasheet's bandwidth or peak
for the bytes it must move and the FLOPs it must do.

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
    assert seconds < 150  # 42-52 s with the v1 tables (2026-11-21); v2 adds its series
    assert spec.kind == "measured" and spec.peak("bf16") > 1e13 and spec.mem_bandwidth > 1e11
    tables = spec.tables
    assert tables.graph_launch_s and tables.eager_launch_s
    assert tables.graph_launch_s < tables.eager_launch_s  # a graph hides the launch
    assert tables.attention_prefill.points and tables.attention_decode.points
    assert len(tables.elementwise) >= 5


def test_h100_peaks_match_the_reference(quick):
    spec, _ = quick
    if spec.datasheet != "h100-sxm":  # not an H100 PCIe or NVL: other clocks and memory
        pytest.skip("reference figures are for the H100 SXM")
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
    assert points[(1, 131072)] > 10 * points[(1, 1024)]  # 128x the KV bytes


def sheet(spec):
    """The datasheet profile of the measured card: its bandwidth and peaks are ceilings no kernel
    passes (the measured copy rate is not: a read-only stream can run a little above it)."""
    if spec.datasheet is None:
        pytest.skip("no datasheet profile for this card")
    return load_gpu(spec.datasheet)


def test_v2_tables_are_all_there(quick):
    spec, _ = quick
    tables = spec.tables
    assert spec.extra["method_version"] == 2 and tables.quant_in_linear is False
    assert set(tables.act_quant) == {f"{d}/{s}" for d in ("fp8", "int8") for s in
                                     ("static", "dynamic-tensor", "dynamic-token", "fused")}
    assert len(tables.attention) == 2 + 16 and tables.moe_block
    assert max(m for m, *_ in tables.grouped["bf16"]) >= 16384


def test_decode_attention_reads_its_kv_cache_no_faster_than_hbm(quick):
    """Every decode point, MLA and windowed ones included, reads its K/V (the latent once for
    MLA; min(C, W) tokens under a window) from HBM: time >= bytes / datasheet bandwidth."""
    from perfmodel.calibrate.attention import read_length
    from perfmodel.calibrate.plan import AttentionCase

    spec, _ = quick
    bandwidth = sheet(spec).mem_bandwidth
    checked = 0
    for table in spec.tables.attention:
        if table.phase != "decode":
            continue
        case = AttentionCase("decode", table.heads, table.kv_heads, table.head_dim, (),
                             kind=table.kind, window=table.window)
        for b, c, seconds in table.points:
            width = table.head_dim if table.kind == "mla" else \
                table.kv_heads * (table.head_dim + table.v_head_dim)
            kv_bytes = 2 * b * read_length(case, c) * width
            assert seconds >= kv_bytes / bandwidth, (table, b, c, seconds)
            checked += 1
    assert checked >= 20


def test_prefill_attention_does_no_better_than_the_tensor_cores(quick):
    """Causal prefill does at least half of 4·b·T²·N·H FLOPs (QKᵀ and PV); a window cuts no work
    from SDPA's masked kernel, but count only the band to stay a floor: time >= FLOPs / peak."""
    spec, _ = quick
    peak = sheet(spec).peak("bf16")
    for table in spec.tables.attention:
        if table.phase != "prefill":
            continue
        for b, t, seconds in table.points:
            keys = min(t, table.window) if table.window else t / 2
            flops = 2 * b * t * keys * table.heads * (table.head_dim + table.v_head_dim)
            assert seconds >= flops / peak, (table, b, t, seconds)


def test_fused_quantization_beats_the_unfused_chain_at_large_sizes(quick):
    """At 4096 x 4096 (32 MiB of bf16, past L2) the per-token PyTorch chain makes several passes
    over x (abs, amax, divide, round, cast); the fused kernel reads x once from HBM and writes q
    once. Each is slower than its minimal bytes (2 read + 1 written per element) allow."""
    spec, _ = quick
    bandwidth = sheet(spec).mem_bandwidth
    for dtype in ("fp8", "int8"):
        at = {key.split("/")[1]: {(r, w): s for r, w, s in points}
              for key, points in spec.tables.act_quant.items() if key.startswith(dtype)}
        big = (4096, 4096)
        assert at["fused"][big] < at["dynamic-token"][big], at
        assert at["static"][big] < at["dynamic-tensor"][big], at
        for scheme in ("static", "fused"):
            assert at[scheme][big] >= 3 * big[0] * big[1] / bandwidth, (dtype, scheme, at)


def test_moe_block_reads_the_experts_it_routes_to(quick):
    """One token routes to exactly k experts: the block reads at least their gate/up/down
    weights (3·D·F bf16 each) from HBM."""
    spec, _ = quick
    bandwidth = sheet(spec).mem_bandwidth
    ones = [p for p in spec.tables.moe_block if p[0] == 1]
    assert ones
    for _, experts, top_k, hidden, intermediate, seconds in ones:
        assert seconds >= top_k * 3 * hidden * intermediate * 2 / bandwidth


def test_triton_quantization_matches_pytorch():
    """The fused per-token kernel gives PyTorch's dynamic-token result (scales equal; codes
    within one step where rounding ties differ), the static kernel PyTorch's static one."""
    torch = pytest.importorskip("torch")
    from perfmodel.torchblocks.quant import qmax, quantize

    torch.manual_seed(3)
    x = torch.randn(37, 5000, dtype=torch.bfloat16, device="cuda") * 3
    for dtype in ("fp8", "int8"):
        fused, fused_scale = quantize(x, dtype, "fused")
        torch_q, torch_scale = quantize(x, dtype, "dynamic-token")
        assert torch.allclose(fused_scale, torch_scale, rtol=1e-6)
        step = (fused.float() - torch_q.float()).abs() / (x.float().abs() / torch_scale + 1)
        assert step.max() <= (1 / 8 if dtype == "fp8" else 1.0)
        scale = torch.tensor(4.0 / qmax(dtype), device="cuda")
        static, _ = quantize(x, dtype, "static", scale)
        ref = (x.cpu() / scale.cpu()).clamp(-qmax(dtype), qmax(dtype))
        ref = (ref.round() if dtype == "int8" else ref).to(static.dtype)
        assert (static.cpu().float() - ref.float()).abs().max() <= (1 if dtype == "int8" else
                                                                    qmax(dtype) / 8)


@pytest.mark.parametrize("dtype", ["fp8", "int8"])
@pytest.mark.parametrize("scheme", ["static", "dynamic-tensor", "dynamic-token", "fused"])
@pytest.mark.parametrize("rows", [3, 40])
def test_engine_linear_per_scheme_matches_its_dequantized_weight(dtype, scheme, rows):
    """The torch engine's W8A8 linear with each activation scheme against x·W_dequantizedᵀ in
    float64: only the activation's rounding separates them (a few % for e4m3's 3-bit mantissa,
    under 1% for int8 at this range)."""
    torch = pytest.importorskip("torch")
    from perfmodel.torchblocks.linear import make_linear

    torch.manual_seed(4)
    lin = make_linear(f"{dtype}/{scheme}", 384, 256, bias=False, dtype=torch.bfloat16,
                      device="cuda")
    scale = lin.scale.double() if dtype == "fp8" else lin.scale.double()[:, None]
    weight = lin.weight.double() * scale
    x = torch.randn(rows, 256, dtype=torch.bfloat16, device="cuda")
    got, want = lin(x).double(), x.double() @ weight.t()
    assert got.shape == (rows, 384)
    assert ((got - want).norm() / want.norm()).item() < (0.05 if dtype == "fp8" else 0.02)


def test_matrix_work_held_for_seconds_loses_rate_to_the_power_limit(quick):
    """An H100 or H200 SXM at 700 W: GEMM bursts of 2 s run at 0.83-0.87 of the table rate,
    bursts of 50 ms at 0.97-0.98 (calibrate/power.py, 2026-11-27); other cards: a curve that
    does not rise with the burst."""
    spec, _ = quick
    assert set(spec.sustained) == {"bf16", "fp8"}
    for curve in spec.sustained.values():
        assert all(0 < f <= 1 for _, f in curve)
        assert curve[-1][1] <= curve[0][1] + 0.02
        if spec.datasheet in ("h100-sxm", "h200"):
            assert 0.78 < curve[-1][1] < 0.93 and curve[0][1] > 0.93
