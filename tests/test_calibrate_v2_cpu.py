"""calibrate-gpu method v2 on the CPU: the attention grids and their byte counts, the activation
quantization kernels against the formats' rounding, the engine's W8A8 schemes, and the absorbed
MLA decode against SDPA.

Ground truth: hand-worked byte counts, e4m3/int8 rounding bounds, float matmuls of the
dequantized weights, and PyTorch's own SDPA.
"""

from __future__ import annotations

import pytest

from perfmodel.calibrate.plan import PREFILL_MAX_TOKENS, make_plan


def test_attention_cases_cover_the_shapes_engines_run():
    """Head dims 64/128/256, GQA groups 1..16 in decode, absorbed MLA decode (128 heads over a
    576-wide latent, 512-wide value), gpt-oss sinks and windows, in prefill and decode."""
    for plan in (make_plan(False, cpu=False), make_plan(True, cpu=False)):
        cases = plan.attention
        decode = [c for c in cases if c.phase == "decode" and c.kind == "gqa"]
        assert {c.head_dim for c in cases if c.phase == "prefill"} >= {64, 128, 256}
        assert {c.head_dim for c in decode} >= {64, 128, 256}
        assert {c.heads // c.kv_heads for c in decode} >= {1, 8, 16}
        mla = [c for c in cases if c.kind == "mla"]
        assert [(c.phase, c.heads, c.kv_heads, c.head_dim, c.v_head_dim) for c in mla] == [
            ("decode", 128, 1, 576, 512)]
        for phase in ("prefill", "decode"):
            assert any(c.sinks and c.window == 128 and c.phase == phase for c in cases)
            assert any(c.sinks and c.window is None and c.phase == phase for c in cases)
        for case in cases:  # a windowed prefill point at or under its window is plain causal
            if case.phase == "prefill" and case.window:
                assert all(t > case.window for _, t in case.points), case
    full = make_plan(False, cpu=False)
    assert all(b * t <= PREFILL_MAX_TOKENS for c in full.attention if c.phase == "prefill"
               for b, t in c.points)
    assert set(full.moe_tokens) >= {1, 8, 32, 128} and max(full.moe_tokens) <= 256


def test_attention_set_bytes_count_what_a_kernel_reads():
    from perfmodel.calibrate.attention import read_length, set_bytes
    from perfmodel.calibrate.plan import AttentionCase

    gqa = AttentionCase("decode", 32, 8, 128, ((1, 4096),))
    assert set_bytes(gqa, 2, 4096) == 2 * 2 * (32 * 128 + 8 * 4096 * 256)
    mla = AttentionCase("decode", 128, 1, 576, ((1, 4096),), kind="mla", v_head_dim=512)
    assert set_bytes(mla, 1, 4096) == 2 * (128 * 576 + 4096 * 576) + 8 * 128 * 4096
    window = AttentionCase("decode", 64, 8, 64, ((1, 4096),), window=128, sinks=True)
    assert read_length(window, 4096) == 128 and read_length(window, 100) == 100
    assert set_bytes(window, 1, 4096) == set_bytes(window, 1, 128)
    prefill = AttentionCase("prefill", 64, 8, 64, ((1, 2048),), window=128)
    assert set_bytes(prefill, 1, 2048) == 2 * 2048 * (64 * 64 + 8 * 128) + 2048 ** 2  # mask


@pytest.mark.parametrize("dtype", ["fp8", "int8"])
@pytest.mark.parametrize("scheme", ["static", "dynamic-tensor", "dynamic-token"])
def test_quantize_round_trips_within_the_format_error(dtype, scheme):
    """q · scale gives x back within the format's rounding (half a step of the row's or the
    tensor's range for int8, half of e4m3's relative step for fp8); static clamps what exceeds
    its fixed range."""
    torch = pytest.importorskip("torch")
    from perfmodel.torchblocks.quant import qmax, quantize

    torch.manual_seed(1)
    x = torch.randn(8, 256, dtype=torch.bfloat16) * torch.linspace(0.1, 4, 8)[:, None]
    scale = torch.tensor(float(x.abs().max()) / qmax(dtype))
    q, s = quantize(x, dtype, scheme, scale)
    assert q.dtype == (torch.float8_e4m3fn if dtype == "fp8" else torch.int8)
    assert s.shape == ((8, 1) if scheme == "dynamic-token" else ())
    back = q.float() * s
    # int8: half a step, plus x / s rounded to bf16 first (2^-9 of up to 127: 0.25 step);
    # fp8 e4m3: half of the 3-bit mantissa's step (2^-4 relative) plus that bf16 rounding,
    # and half the subnormal step (2^-9 of the scale) near zero
    if dtype == "int8":
        bound = 0.75 * s
    else:
        bound = x.float().abs() * (2 ** -4 + 2 ** -8) + s * 2 ** -9
    assert ((back - x.float()).abs() <= bound).all()
    assert (back - x.float()).abs().max() > 0  # really quantized
    clipped, _ = quantize(x * 2, dtype, "static", scale)  # beyond the fixed range: clamped
    assert clipped.float().abs().max() == qmax(dtype)


def test_unknown_quantization_scheme_is_refused():
    torch = pytest.importorskip("torch")
    from perfmodel.torchblocks.quant import quantize

    with pytest.raises(ValueError, match="scheme"):
        quantize(torch.ones(2, 16, dtype=torch.bfloat16), "fp8", "per-block")
    with pytest.raises(RuntimeError, match="Triton on a CUDA GPU"):
        quantize(torch.ones(2, 16, dtype=torch.bfloat16), "fp8", "fused")


@pytest.mark.parametrize("scheme", ["static", "dynamic-tensor", "dynamic-token"])
def test_engine_int8_linear_quantizes_per_scheme(scheme):
    """The torch engine's W8A8 int8 linear, each activation scheme, against x·Wᵀ in float:
    within int8's rounding (a few 1/127 of the activation range, relative to the output)."""
    torch = pytest.importorskip("torch")
    from perfmodel.torchblocks.linear import Int8Linear

    torch.manual_seed(2)
    layer = Int8Linear(64, 256, bias=False, dtype=torch.bfloat16, device="cpu", scheme=scheme)
    x = torch.randn(5, 256, dtype=torch.bfloat16)
    try:
        y = layer(x).float()
    except (RuntimeError, NotImplementedError) as exc:  # no CPU _int_mm in this torch
        pytest.skip(str(exc))
    want = x.float() @ (layer.weight.float() * layer.scale[:, None]).t()
    assert (y - want).norm() / want.norm() < 0.03


@pytest.mark.parametrize("kind", ["fp8/per-block", "bf16/static", "int4/dynamic-token"])
def test_engine_refuses_an_unknown_activation_scheme(kind):
    torch = pytest.importorskip("torch")
    from perfmodel.errors import WorkloadError
    from perfmodel.torchblocks.linear import make_linear

    with pytest.raises(WorkloadError, match="activation scheme"):
        make_linear(kind, 64, 64, bias=False, dtype=torch.bfloat16, device="cpu")


def test_absorbed_mla_is_attention_of_every_head_over_one_latent():
    """The MLA decode kernel equals SDPA with N query heads sharing one KV head whose key is the
    whole latent and whose value is its first v_head_dim columns."""
    torch = pytest.importorskip("torch")
    from perfmodel.calibrate.attention import _absorbed_mla

    torch.manual_seed(5)
    q, latent = torch.randn(2, 16, 96), torch.randn(2, 40, 96)
    got = _absorbed_mla(q, latent, 64)
    want = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, None], latent[:, None].expand(2, 16, 40, 96),
        latent[:, None, :, :64].expand(2, 16, 40, 64))[:, :, 0]
    assert torch.allclose(got, want, atol=1e-5)


def test_weight_kind_names_the_scheme_of_w8a8_only():
    pytest.importorskip("torch")
    from perfmodel.torchblocks.linear import weight_kind

    assert weight_kind("fp8", "static") == "fp8/static"
    assert weight_kind("int8", "dynamic-tensor") == "int8/dynamic-tensor"
    assert weight_kind("fp8", None) == "fp8" and weight_kind("int4", "static") == "int4"
