"""The estimate over measured tables: exact interpolation, floors, borrowed rates, activation
quantization, and the limit as a floor (CPU only, synthetic tables worked by hand)."""

from __future__ import annotations

import math
import types
from dataclasses import fields, replace

import pytest

from perfmodel.cost.presets import engine_preset
from perfmodel.cost.estimate import estimator_for, make_estimator
from perfmodel.cost.kernel_tables import KernelModel, Rates
from perfmodel.cost.ops import Op, forward_ops
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload
from perfmodel.hardware.gpu import AttentionTable, LinearTable, Tables, parse_gpu

from conftest import H100_SHEET

PEAK, BW, FLOOR = 8.0e14, 3.0e12, 3e-6
MS = (1, 16, 256, 4096)
SHAPES = ((1024, 1024), (1024, 16384), (16384, 1024), (16384, 16384))
TORCH = engine_preset("torch-cudagraph")


def linear_seconds(m, k, n, w=2.0, a=2.0, peak=PEAK):
    """A synthetic GPU: each kernel costs its roofline at PEAK and BW plus a fixed floor."""
    return max(2 * m * n * k / peak, (n * k * w + m * k * a + m * n * 2) / BW) + FLOOR


def synthetic_tables(drop_attention=False):
    linear = {"bf16": LinearTable(MS, SHAPES, tuple(tuple(linear_seconds(m, k, n) for m in MS)
                                                    for k, n in SHAPES)),
              "fp8": LinearTable(MS, SHAPES, tuple(tuple(
                  linear_seconds(m, k, n, 1, 1, 2 * PEAK) for m in MS) for k, n in SHAPES))}
    prefill = AttentionTable(32, 8, 128, tuple(
        (b, t, 2 * b * 32 * t * (t + 1) / 2 * 256 / PEAK + FLOOR)
        for b in (1, 4) for t in (128, 2048, 32768)))
    decode = AttentionTable(32, 8, 128, tuple(
        (b, c, (b * c * 2 * 8 * 128 * 2 + b * 2 * 32 * 128 * 2) / BW + FLOOR)
        for b in (1, 32) for c in (256, 4096, 65536)))
    elementwise = tuple((x, x / BW + FLOOR) for x in (4096.0, 1 << 20, 1 << 26, 1 << 30))
    return Tables(linear=linear, attention_prefill=None if drop_attention else prefill,
                  attention_decode=None if drop_attention else decode,
                  elementwise=elementwise, graph_launch_s=FLOOR / 3)


def with_fields(tables, **extra):
    """Tables with fields a newer profile carries (act_quant, quant_in_linear), on any version
    of the Tables record."""
    names = {f.name for f in fields(tables)}
    if set(extra) <= names:
        return replace(tables, **extra)
    return types.SimpleNamespace(**{f.name: getattr(tables, f.name) for f in fields(tables)},
                                 **extra)


def measured_gpu(**changes):
    data = {**H100_SHEET, "name": "synthetic-measured", "kind": "measured", "source": "measured",
            "peak_flops": {"bf16": PEAK, "fp16": PEAK, "fp8": 2 * PEAK}, "mem_bandwidth": BW}
    return replace(parse_gpu(data), tables=synthetic_tables(**changes))


def matmul_op(m, n, k, count=1):
    row = 2 * k + 2 * n
    return Op("decode", "down", "matmul", count, 2.0 * m * n * k, n * k * 2 + m * row, "bf16",
              (m, n, k), "bf16", row_bytes=row)


def estimator(tables=None, target=None, engine=TORCH, scheme=None):
    model = KernelModel(tables or synthetic_tables(), Rates({"bf16": PEAK, "fp8": 2 * PEAK}, BW))
    return make_estimator(model, target or model.rates, engine, scheme)


def test_reproduces_a_table_point():
    assert estimator()(matmul_op(16, 1024, 16384, 3)) == \
        pytest.approx(3 * linear_seconds(16, 16384, 1024), rel=1e-12)


def test_interpolation_in_m_is_log_log_in_time_with_exact_weights():
    """M = 32 lies a quarter of the way from 16 to 256 in log M: t = t16^(3/4) · t256^(1/4).
    Reversed weights give t16^(1/4) · t256^(3/4), 4% off: this catches them."""
    t16, t256 = linear_seconds(16, 1024, 1024), linear_seconds(256, 1024, 1024)
    assert estimator()(matmul_op(32, 1024, 1024)) == \
        pytest.approx(t16 ** 0.75 * t256 ** 0.25, rel=1e-12)


def test_interpolation_in_k_is_linear_in_efficiency_with_exact_weights():
    """K = 2048 lies a quarter of the way from 1024 to 16384 in log K: the efficiency there is
    3/4 of K = 1024's plus 1/4 of K = 16384's; the time is the op's own roofline over it."""
    def eff(k):
        return max(2 * 16 * 1024 * k / PEAK, (1024 * k * 2 + 16 * k * 2 + 16 * 1024 * 2) / BW) \
            / linear_seconds(16, k, 1024)
    roof = (1024 * 2048 * 2 + 16 * 2048 * 2 + 16 * 1024 * 2) / BW
    expected = roof / (0.75 * eff(1024) + 0.25 * eff(16384))
    assert estimator()(matmul_op(16, 1024, 2048)) == pytest.approx(expected, rel=1e-12)


def test_every_kernel_kind_has_a_floor():
    """Tiny kernels cost at least the smallest time measured for their kind."""
    est = estimator()
    smallest_matmul = linear_seconds(1, 1024, 1024)
    assert est(matmul_op(1, 8, 64)) == pytest.approx(smallest_matmul, rel=1e-12)
    model = KernelModel(synthetic_tables(), Rates({"bf16": PEAK}, BW))
    assert model.kernel_seconds(1.0) == pytest.approx(4096 / BW + FLOOR, rel=1e-12)
    tiny_decode = Op("decode", "attention", "attention", 1, 2.0 * 8 * 64 * 10, 100.0, "bf16",
                     (1, 10, 8, 1, 64))
    assert est(tiny_decode) == pytest.approx(256 * 2 * 8 * 128 * 2 / BW + 32 * 128 * 4 / BW
                                             + FLOOR, rel=1e-12)


def test_memory_bound_kernels_scale_beyond_the_table():
    model = KernelModel(synthetic_tables(), Rates({"bf16": PEAK}, BW))
    big = 8 * 2.0**30  # 8× the largest point: its efficiency holds, so the time grows 8×
    assert model.kernel_seconds(big) == pytest.approx(8 * ((1 << 30) / BW + FLOOR), rel=1e-12)


def test_time_never_falls_as_m_grows_even_if_the_table_dips():
    """A table whose time dips at M = 256 (noise) is read with a running maximum."""
    seconds = [list(row) for row in synthetic_tables().linear["bf16"].seconds]
    seconds[0][2] = seconds[0][1] / 2  # M = 256 measured faster than M = 16
    table = LinearTable(MS, SHAPES, tuple(tuple(r) for r in seconds))
    est = estimator(replace(synthetic_tables(), linear={"bf16": table}))
    times = [est(matmul_op(m, 1024, 1024)) for m in (1, 8, 16, 64, 256, 1024, 4096, 10**5)]
    assert times == sorted(times)
    assert times[4] == pytest.approx(seconds[0][1], rel=1e-12)  # the running max at M = 256


def test_borrowed_estimate_uses_the_targets_own_bandwidth_and_peaks():
    """A target with half the bandwidth and a quarter of the peak: every borrowed kernel keeps
    its measured efficiency on the target's rates. Memory-bound: exactly twice the time."""
    target = Rates({"bf16": PEAK / 4, "fp8": PEAK / 2}, BW / 2)
    here, there = estimator(), estimator(target=target)
    ew = Op("decode", "attn_residual", "elementwise", 1, 0, float(1 << 26), "bf16")
    assert there(ew) == pytest.approx(2 * here(ew), rel=1e-12)
    gemv = matmul_op(1, 16384, 16384)  # memory-bound matmul at a table point
    assert there(gemv) == pytest.approx(2 * here(gemv), rel=1e-12)
    big = matmul_op(4096, 16384, 16384)  # compute-bound: four times
    assert there(big) == pytest.approx(4 * here(big), rel=1e-12)
    decode = Op("decode", "attention", "attention", 1, 2.0 * 32 * 32 * 4096 * 256,
                32 * 4096 * 2 * 8 * 128 * 2 + 32 * 2 * 32 * 128 * 2, "bf16",
                (32, 4096, 32, 8, 128))
    assert there(decode) == pytest.approx(2 * here(decode), rel=1e-12)


def test_bundled_datasheet_borrows_at_its_own_rates():
    """rtx-4090 borrows an H100/H200 profile: a memory-bound op takes the source's time times
    source bandwidth / the target's (its datasheet scaled by the fraction the source reached)."""
    from perfmodel.cost.estimate import _source_for, _target_rates
    from perfmodel.hardware.gpu import load_gpu

    gpu = load_gpu("rtx-4090")
    source, flag = _source_for(gpu)
    assert flag and source.name.endswith("-measured")
    sheet = load_gpu(source.datasheet)
    bw = gpu.mem_bandwidth * source.mem_bandwidth / sheet.mem_bandwidth
    assert _target_rates(gpu, source).bandwidth == pytest.approx(bw, rel=1e-12)
    op = Op("decode", "attn_residual", "elementwise", 1, 0, 3.0 * 2**27, "bf16")
    there = estimator_for(gpu, preset("bf16"), None).estimator(op)
    here = estimator_for(source, preset("bf16"), None).estimator(op)
    assert there == pytest.approx(here * source.mem_bandwidth / bw, rel=1e-9)


def test_estimate_never_below_limit_and_positive(llama8b):
    gpu = measured_gpu()
    est = estimator_for(gpu, preset("bf16"), None)
    assert est.estimator is not None and est.flag is None
    pred = predict(llama8b, preset("bf16"), gpu, Workload(4, 2000, 16), est.estimator)
    for phase in (pred.prefill, pred.decode):
        for c in phase.costs:
            assert c.estimate_s >= c.limit_s * (1 - 1e-12), c.op.name
    assert pred.estimate["itl_s"] > pred.limit["itl_s"]


def test_missing_tables_give_null_with_reason():
    gpu = measured_gpu(drop_attention=True)
    est = estimator_for(gpu, preset("bf16"), None)
    assert est.estimator is None and "attention" in est.note
    est = estimator_for(measured_gpu(), preset("int8"), None)
    assert est.estimator is None and "linear int8" in est.note


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


def test_fused_add_rmsnorm_never_costs_more_than_the_pair(llama8b):
    gpu = measured_gpu()
    torch_est = estimator_for(gpu, preset("bf16"), "torch-cudagraph").estimator
    tuned_est = estimator_for(gpu, preset("bf16"), "tuned").estimator
    for batch in (1, 64, 4096):
        ops = {op.name: op for op in forward_ops(llama8b, preset("bf16"), "decode", batch, 1, 100)}
        pair = torch_est(ops["mlp_norm"]) + torch_est(ops["attn_residual"])
        assert tuned_est(ops["mlp_norm"]) <= pair * (1 + 1e-12)


def test_elementwise_ops_count_their_kernels(llama8b):
    """Unfused RoPE launches five kernels per tensor, so at decode it costs ≥ 10 floors."""
    est = estimator_for(measured_gpu(), preset("bf16"), "torch-cudagraph").estimator
    rope = next(op for op in forward_ops(llama8b, preset("bf16"), "decode", 1, 1, 100)
                if op.name == "rope")
    assert est(rope) >= 10 * FLOOR * rope.count


QUANT = {"fp8/static": ((1, 4096, 2e-6), (4096, 4096, 20e-6)),
         "fp8/dynamic-token": ((1, 4096, 5e-6), (4096, 4096, 50e-6)),
         "fp8/fused": ((1, 4096, 1e-6), (4096, 4096, 10e-6))}


@pytest.mark.parametrize(("engine", "scheme", "added"), [
    ("torch-cudagraph", "static", 2e-6), ("torch-cudagraph", "dynamic-token", 5e-6),
    ("tuned", "static", 1e-6), ("tuned", "dynamic-token", 1e-6)])
def test_w8a8_matmul_adds_the_quantization_kernel_its_engine_launches(engine, scheme, added):
    """GEMM-only fp8 tables (quant_in_linear false): + the scheme's kernel for the torch
    engine, + one fused kernel for a tuned one; tables with the quantization inside: + 0."""
    op = replace(matmul_op(1, 1024, 4096), dtype="fp8", weight_dtype="fp8",
                 bytes=1024 * 4096 + 4096 + 2048, row_bytes=4096 + 2048)
    gemm = estimator(synthetic_tables())(op)
    new = with_fields(synthetic_tables(), quant_in_linear=False, act_quant=QUANT)
    assert estimator(new, engine=engine_preset(engine), scheme=scheme)(op) == \
        pytest.approx(gemm + added, rel=1e-12)
    old = with_fields(synthetic_tables(), quant_in_linear=True, act_quant=QUANT)
    assert estimator(old, engine=engine_preset(engine), scheme=scheme)(op) == \
        pytest.approx(gemm, rel=1e-12)


def test_missing_quantization_table_falls_back_to_elementwise_passes():
    op = replace(matmul_op(1, 1024, 4096), dtype="fp8", weight_dtype="fp8",
                 bytes=1024 * 4096 + 4096 + 2048, row_bytes=4096 + 2048)
    new = with_fields(synthetic_tables(), quant_in_linear=False, act_quant={})
    model = KernelModel(new, Rates({"bf16": PEAK, "fp8": 2 * PEAK}, BW))
    one_pass = model.kernel_seconds(4096 * 3)
    gemm = estimator(synthetic_tables())(op)
    tuned = estimator(new, engine=engine_preset("tuned"))(op)
    torch_dyn = estimator(new, scheme="dynamic-token")(op)
    assert tuned == pytest.approx(gemm + one_pass, rel=1e-12)
    assert torch_dyn == pytest.approx(gemm + 2 * one_pass, rel=1e-12)
    assert math.isclose(estimator(new, scheme="static")(op), tuned, rel_tol=1e-12)


def test_mla_decode_is_timed_from_the_mla_table():
    """An absorbed-MLA decode op (128 heads over a 576-wide latent) takes the MLA table's time
    at a measured point, not the 32/8/128 GQA table's."""
    from perfmodel.model.spec import Attention

    mla_seconds = 123e-6
    mla = AttentionTable(128, 1, 576, ((8, 4096, mla_seconds), (8, 16384, 4 * mla_seconds)),
                         phase="decode", kind="mla", v_head_dim=512)
    tables = synthetic_tables()
    tables = replace(tables, attention=(tables.attention_prefill, tables.attention_decode, mla))
    attn = Attention("mla", 128, 128, 192, 128, kv_lora_rank=512, qk_rope_head_dim=64,
                     qk_nope_head_dim=128)
    flops = 2.0 * 8 * 128 * 4096 * (576 + 512)
    nbytes = (8 * 4096 * 576 + 8 * 128 * (576 + 512)) * 2
    op = Op("decode", "attention", "attention", 1, flops, nbytes, "bf16", (8, 4096, 128, 1, 576),
            attention=attn)
    assert estimator(tables)(op) == pytest.approx(mla_seconds, rel=1e-12)
    gqa = replace(op, attention=None, shape=(8, 4096, 32, 8, 128))
    assert estimator(tables)(gqa) != pytest.approx(mla_seconds, rel=1e-3)


def test_fp8_static_decode_is_faster_than_bf16_on_h100():
    """W8A8 with a static activation scale (one cast kernel) reads half the weight bytes: its
    decode estimate is below bf16's for every bundled dense model at batch ≤ 32 on the
    measured H100. Needs a profile whose fp8 table times the GEMM alone (method v2)."""
    from perfmodel.cost.precision import with_act_scheme
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import bundled_models, load_model_config

    gpu = load_gpu("h100-sxm-measured")
    if gpu.tables.quant_in_linear:
        pytest.skip("h100-sxm-measured is a method-v1 profile: its fp8 table holds the "
                    "torch engine's dynamic quantization")
    bf16, fp8 = preset("bf16"), with_act_scheme(preset("fp8"), "static")
    est_bf16 = estimator_for(gpu, bf16, None).estimator
    est_fp8 = estimator_for(gpu, fp8, None).estimator
    for model in bundled_models():
        spec = model_spec(load_model_config(model).config)
        if spec.is_moe:
            continue
        for batch in (1, 2, 8, 32):
            w = Workload(batch, 1024, 256)
            slow = predict(spec, bf16, gpu, w, est_bf16).estimate["itl_s"]
            fast = predict(spec, fp8, gpu, w, est_fp8).estimate["itl_s"]
            assert fast < slow, (model, batch, fast, slow)


def test_composed_moe_block_against_the_measured_block():
    """The MoE ops the estimate composes (router + routing, dispatch, grouped GEMMs, SiLU·mul,
    combine) against whole bf16 MoE blocks the torch engine ran at decode batch sizes
    (tables.moe_block of the method-v2 H100 profile): each within 30%, median within 10%."""
    from perfmodel.cost.ops import _Ctx, mlp_block
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.spec import Mlp

    gpu = load_gpu("h100-sxm-measured")
    blocks = gpu.tables.moe_block
    if not blocks:
        pytest.skip("h100-sxm-measured is a method-v1 profile: no MoE block table")
    est = estimator_for(gpu, preset("bf16"), "torch-cudagraph").estimator
    ratios = []
    for tokens, experts, top_k, hidden, inter, seconds in blocks:
        ctx = _Ctx("decode", preset("bf16"), tokens, 1, hidden)
        ops = [op for op in mlp_block(ctx, Mlp("moe", inter, experts, top_k))
               if op.name not in ("mlp_norm", "mlp_residual")]
        ratios.append(sum(est(op) for op in ops) / seconds)
    assert len(ratios) >= 20
    assert all(0.7 <= r <= 1.3 for r in ratios), ratios
    assert abs(sorted(ratios)[len(ratios) // 2] - 1) <= 0.10


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_tuned_is_never_slower_than_torch_for_bundled_models(precision):
    """Fusing kernels never costs time: the tuned preset's TTFT and ITL stay at or below the
    torch engine's for every bundled model (Llama-3.1-70B's tuned ITL used to be above)."""
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import bundled_models, load_model_config

    gpu, prec = load_gpu("h100-sxm-measured"), preset(precision)
    torch_est = estimator_for(gpu, prec, "torch-cudagraph").estimator
    tuned_est = estimator_for(gpu, prec, "tuned").estimator
    for model in bundled_models():
        spec = model_spec(load_model_config(model).config)
        for batch in (1, 8, 64):
            w = Workload(batch, 1024, 64)
            slow = predict(spec, prec, gpu, w, torch_est).estimate
            fast = predict(spec, prec, gpu, w, tuned_est).estimate
            assert fast["itl_s"] <= slow["itl_s"] and fast["ttft_s"] <= slow["ttft_s"], model


def test_small_kernels_of_bundled_models_keep_a_latency_floor():
    """gpt-oss-120b at batch 1: its 128-token sliding layers' decode attention and its router
    GEMV each cost at least the smallest kernel of their kind the profile measured."""
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config

    gpu = load_gpu("h100-sxm-measured")
    spec = model_spec(load_model_config("openai/gpt-oss-120b").config)
    est = estimator_for(gpu, preset("bf16"), None).estimator
    ops = {(op.name, op.group): op for op in forward_ops(spec, preset("bf16"), "decode", 1, 1,
                                                         4096)}
    attention = ops[("attention", "sliding 128")]
    smallest = min(s for t in gpu.tables.attention if t.phase == "decode" for _, _, s in t.points)
    assert est(attention) / attention.count >= smallest
    router = ops[("router", "sliding 128")]
    smallest = min(s for row in gpu.tables.linear["bf16"].seconds for s in row if s)
    assert est(router) / router.count >= smallest


def test_rmsnorm_bytes_have_one_definition(llama8b):
    """A norm table measured at exactly the bandwidth times the norm op at exactly its own
    roofline: the op and the table count RMSNorm bytes the same way ((2·rows + 1)·D·b)."""
    from perfmodel.cost.ops import rmsnorm_bytes

    norm = tuple((r, 4096, rmsnorm_bytes(r, 4096, 2) / BW) for r in (1, 64, 4096))
    est = estimator(replace(synthetic_tables(), rmsnorm=norm))
    for rows in (1, 64, 4096):
        op = next(o for o in forward_ops(llama8b, preset("bf16"), "prefill", 1, rows, rows)
                  if o.name == "attn_norm")
        assert op.bytes == rmsnorm_bytes(rows, 4096, 2)
        assert est(op) == pytest.approx(op.count * max(op.bytes / BW, FLOOR / 3), rel=1e-12)


def test_sliding_window_prefill_by_engine():
    """gemma-3-27b prefill at 32k tokens, sliding layers: the torch engine passes SDPA a dense
    banded mask (the windowed table: the whole causal square is computed), a tuned engine's
    local attention skips the tiles outside the window (window-less tables, banded work)."""
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config

    gpu = load_gpu("h100-sxm-measured")
    if not any(t.window for t in gpu.tables.attention if t.phase == "prefill"):
        pytest.skip("no windowed prefill table in this profile")
    spec = model_spec(load_model_config("google/gemma-3-27b-it").config)
    ops = {(op.name, op.group): op for op in forward_ops(spec, preset("bf16"), "prefill", 1,
                                                         32768, 32768)}
    sliding, full = ops[("attention", "sliding 1024")], ops[("attention", "global")]
    from perfmodel.cost.roofline import cost

    limit = cost(sliding, gpu).limit_s
    torch_est = estimator_for(gpu, preset("bf16"), "torch-cudagraph").estimator
    tuned_est = estimator_for(gpu, preset("bf16"), "tuned").estimator
    assert limit <= tuned_est(sliding) <= 2 * limit
    # dense: about the causal kernel's time over the whole square, per layer
    per_layer = torch_est(sliding) / sliding.count
    assert per_layer >= 0.5 * torch_est(full) / full.count
