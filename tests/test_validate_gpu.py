"""The torch-cudagraph engine on a CUDA GPU: quantized linears against their own dequantized
weights, KV-cache consistency, and measure_prefill / measure_decode / sweep on tiny models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from perfmodel.model.architectures import model_spec  # noqa: E402
from perfmodel.cost.precision import preset  # noqa: E402
from perfmodel.validate import op_names  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

BASE = {"hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 512, "head_dim": 64}
MOE = {"moe_intermediate_size": 128, "num_experts": 8, "num_experts_per_tok": 2}
CONFIGS = {
    "llama": {**BASE, "model_type": "llama"},
    "qwen3_moe": {**BASE, **MOE, "model_type": "qwen3_moe"},
    "qwen2_moe": {**BASE, **MOE, "model_type": "qwen2_moe",
                  "shared_expert_intermediate_size": 256},
    "mistral_window": {**BASE, "model_type": "mistral", "sliding_window": 32},
    "gpt_oss": {**BASE, "model_type": "gpt_oss", "num_local_experts": 8,
                "num_experts_per_tok": 2, "sliding_window": 32},
}
CASES = [("llama", p) for p in ("bf16", "fp8", "int8", "int4")] + [
    ("qwen3_moe", "bf16"), ("qwen3_moe", "fp8"), ("qwen2_moe", "bf16"),
    ("mistral_window", "bf16"), ("gpt_oss", "bf16")]


def engine_for(name, precision, seed=0):
    from perfmodel.validate import build_engine

    torch.manual_seed(seed)
    return build_engine(model_spec(CONFIGS[name]), preset(precision), max_batch=4,
                        max_context=256, device="cuda")


@pytest.mark.parametrize("precision", ["bf16", "fp8", "int8", "int4"])
@pytest.mark.parametrize("rows", [3, 40])
def test_linear_matches_its_dequantized_weight(precision, rows):
    """lin(I) is the dequantized Wᵀ (identity rows quantize exactly); lin(x) ≈ x·lin(I)."""
    from perfmodel.torchblocks.linear import make_linear

    lin = make_linear(precision, 384, 256, bias=False, dtype=torch.bfloat16, device="cuda")
    weight_t = lin(torch.eye(256, dtype=torch.bfloat16, device="cuda")).double()
    x = torch.randn(rows, 256, dtype=torch.bfloat16, device="cuda")
    got, want = lin(x).double(), x.double() @ weight_t
    assert got.shape == (rows, 384) and weight_t.abs().max() > 0
    assert ((got - want).norm() / want.norm()).item() < 0.08


@pytest.mark.parametrize("name,precision", CASES)
def test_decode_after_prefill_matches_longer_prefill(name, precision):
    engine = engine_for(name, precision)
    tokens = torch.randint(0, 512, (2, 41), device="cuda")
    whole = engine.prefill(tokens, engine.new_cache(2, 41)).double()
    cache = engine.new_cache(2, 41)
    engine.prefill(tokens[:, :40], cache)
    step = engine.decode(tokens[:, 40], cache, 41).double()
    cosine = torch.nn.functional.cosine_similarity(step, whole, dim=-1)
    # bf16 noise can flip a near-tied expert choice, so MoE models get a looser bound
    bound = 0.9 if engine.spec.is_moe else 0.99
    assert torch.isfinite(step).all() and (cosine > bound).all(), cosine


@pytest.mark.parametrize("name,precision", CASES)
def test_measure_prefill_and_decode(name, precision):
    from perfmodel.validate import measure_decode, measure_prefill

    engine = engine_for(name, precision)
    expected = set(op_names(engine.spec))
    for m in (measure_prefill(engine, 2, 64), measure_decode(engine, 4, 200)):
        assert m.seconds > 0 and len(m.samples) >= 10 and min(m.samples) > 0
        assert expected <= set(m.op_seconds), expected - set(m.op_seconds)
        assert all(s > 0 for s in m.op_seconds.values())
        assert m.kernels >= len(expected) and m.kernels == sum(m.op_kernels.values())
        assert set(m.op_kernels) == set(m.op_seconds)
        # kernels run back to back in the graph: their sum cannot exceed the replay by much
        assert 0 < m.kernel_seconds < 1.5 * m.seconds


def test_sweep_skips_a_shape_that_does_not_fit():
    from perfmodel.validate import sweep

    notes = []
    points = [("decode", 1, 64), ("decode", 2000, 100_000), ("prefill", 2, 64)]
    results = sweep(model_spec(CONFIGS["llama"]), preset("bf16"), points, on_skip=notes.append)
    assert [(m.phase, m.batch, m.tokens) for m in results] == [points[0], points[2]]
    assert len(notes) == 1 and "out of device memory" in notes[0]
