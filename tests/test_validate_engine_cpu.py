"""The torch-cudagraph engine's eager forwards on the CPU: shapes, KV-cache consistency, a
from-scratch reference, op names, and clear errors for what the CPU cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from perfmodel.model.architectures import model_spec  # noqa: E402
from perfmodel.errors import WorkloadError  # noqa: E402
from perfmodel.cost.precision import Precision, preset  # noqa: E402
from perfmodel.validate import op_names  # noqa: E402
from perfmodel.validate.engine import build_engine  # noqa: E402

FP32 = Precision("fp32", "fp32", 4, "fp32", "fp32", "fp32", base_dtype="fp32")
BASE = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 256}
CONFIGS = {
    "llama": {**BASE, "model_type": "llama"},
    "qwen3": {**BASE, "model_type": "qwen3", "head_dim": 32},
    "mistral_window": {**BASE, "model_type": "mistral", "sliding_window": 5},
    "qwen3_moe": {**BASE, "model_type": "qwen3_moe", "moe_intermediate_size": 32,
                  "num_experts": 8, "num_experts_per_tok": 2, "head_dim": 16},
    "qwen2_moe_shared": {**BASE, "model_type": "qwen2_moe", "moe_intermediate_size": 32,
                         "num_experts": 8, "num_experts_per_tok": 2,
                         "shared_expert_intermediate_size": 64},
    "gpt_oss": {**BASE, "model_type": "gpt_oss", "num_local_experts": 4,
                "num_experts_per_tok": 2, "sliding_window": 4, "head_dim": 16},
}


def engine_for(name: str, precision: Precision = FP32, seed: int = 0):
    torch.manual_seed(seed)
    return build_engine(model_spec(CONFIGS[name]), precision, max_batch=2, max_context=32,
                        device="cpu")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_decode_after_prefill_matches_longer_prefill(name):
    """Prefill T tokens then decode token T+1 == prefill of all T+1 tokens (float32)."""
    engine = engine_for(name)
    batch, length = 2, 11  # longer than the sliding windows, so the banded mask is exercised
    tokens = torch.randint(0, 256, (batch, length + 1))
    whole = engine.prefill(tokens, engine.new_cache(batch, length + 1))
    cache = engine.new_cache(batch, length + 1)
    first = engine.prefill(tokens[:, :length], cache)
    step = engine.decode(tokens[:, length], cache, length + 1)
    assert whole.shape == first.shape == step.shape == (batch, 256)
    assert torch.isfinite(step).all()
    torch.testing.assert_close(step, whole, rtol=1e-4, atol=1e-4)
    assert (first - whole).abs().max() > 1e-2  # the new token changed the answer


@pytest.mark.parametrize("name", ["llama", "qwen3_moe"])
def test_sequences_in_a_batch_are_independent(name):
    engine = engine_for(name)
    tokens = torch.randint(0, 256, (2, 7))
    both = engine.prefill(tokens, engine.new_cache(2, 7))
    for row in range(2):
        alone = engine.prefill(tokens[row:row + 1], engine.new_cache(1, 7))
        torch.testing.assert_close(alone[0], both[row], rtol=1e-4, atol=1e-4)


def reference_llama(engine, tokens: torch.Tensor) -> torch.Tensor:
    """A from-scratch Llama forward on the engine's weights: explicit softmax attention with the
    KV heads repeated, interleaved-free rotate-half RoPE, float64."""
    x = engine.embed.double()[tokens]
    length = tokens.shape[1]
    cos, sin = (t[:length].double() for t in engine.rope[16])
    causal = torch.ones(length, length, dtype=torch.bool).tril()

    def norm(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double()

    def rope(v):
        half = v.shape[-1] // 2
        return v * cos + torch.cat((-v[..., half:], v[..., :half]), -1) * sin

    for _, attention, mlp in engine.layers:
        h = norm(x, attention.norm) @ attention.qkv.weight.double().T
        q, k, v = h.split(attention.split, -1)
        q = rope(q.unflatten(-1, (4, 16))).transpose(1, 2)
        k = rope(k.unflatten(-1, (2, 16))).transpose(1, 2).repeat_interleave(2, 1)
        v = v.unflatten(-1, (2, 16)).transpose(1, 2).repeat_interleave(2, 1)
        scores = (q @ k.transpose(-1, -2) / 4.0).masked_fill(~causal, float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        x = x + out @ attention.o.weight.double().T
        gate, up = (norm(x, mlp.norm) @ mlp.gate_up.weight.double().T).chunk(2, -1)
        x = x + (F.silu(gate) * up) @ mlp.down.weight.double().T
    return norm(x[:, -1], engine.final_norm) @ engine.lm_head.double().T


def test_prefill_matches_a_from_scratch_reference():
    engine = engine_for("llama")
    tokens = torch.randint(0, 256, (2, 9))
    got = engine.prefill(tokens, engine.new_cache(2, 9)).double()
    want = reference_llama(engine, tokens)
    assert ((got - want).norm() / want.norm()).item() < 1e-5


def test_bf16_runs_on_cpu():
    engine = engine_for("qwen3_moe", preset("bf16"))
    tokens = torch.randint(0, 256, (2, 5))
    cache = engine.new_cache(2, 6)
    engine.prefill(tokens, cache)
    logits = engine.decode(tokens[:, 0], cache, 6)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def annotated_names(engine, run) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as handle:
            events = json.load(handle)["traceEvents"]
    return {e["name"] for e in events if str(e.get("cat", "")).lower() == "user_annotation"}


@pytest.mark.parametrize("name", ["llama", "qwen3", "qwen2_moe_shared"])
def test_every_op_name_is_a_profiled_region(name):
    engine = engine_for(name)
    tokens = torch.randint(0, 256, (2, 4))
    cache = engine.new_cache(2, 5)
    expected = set(op_names(engine.spec))
    assert annotated_names(engine, lambda: engine.prefill(tokens, cache)) == expected
    assert annotated_names(engine, lambda: engine.decode(tokens[:, 0], cache, 5)) == expected
    assert ("qk_norm" in expected) == (name == "qwen3")
    assert ("shared_down" in expected) == (name == "qwen2_moe_shared")


@pytest.mark.parametrize("precision", ["fp8", "int8", "int4"])
def test_quantized_precisions_need_cuda(precision):
    with pytest.raises(WorkloadError, match="CUDA"):
        engine_for("llama", preset(precision))


def test_mla_is_a_clear_error():
    cfg = {**BASE, "model_type": "deepseek_v3", "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
           "v_head_dim": 16, "kv_lora_rank": 32, "q_lora_rank": 48,
           "moe_intermediate_size": 32, "n_routed_experts": 4, "num_experts_per_tok": 2,
           "n_shared_experts": 1, "first_k_dense_replace": 1}
    with pytest.raises(WorkloadError, match="MLA"):
        build_engine(model_spec(cfg), FP32, max_batch=1, max_context=8, device="cpu")


def test_limits_and_measuring_on_cpu_are_clear_errors():
    from perfmodel.validate.timing import measure_decode

    engine = engine_for("llama")
    with pytest.raises(WorkloadError, match="max_context"):
        engine.new_cache(1, 33)
    with pytest.raises(WorkloadError, match="CUDA"):
        measure_decode(engine, 1, 8)


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, perfmodel.validate, perfmodel.validate.compare; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


INT8_FP32 = Precision("int8", "int8", 1, "int8", "int8", "fp32", base_dtype="fp32",
                      act_scheme="static")


def int8_engine(monkeypatch, scheme: str, seed: int = 0):
    """An int8 W8A8 engine on the CPU: torch._int_mm runs there; only the CUDA probe is
    skipped (fp8's _scaled_mm has no CPU kernel, so fp8 cannot be tested this way)."""
    import dataclasses

    import perfmodel.torchblocks.linear as linear

    monkeypatch.setattr(linear, "probe", lambda kind, device: None)
    return engine_for("llama", dataclasses.replace(INT8_FP32, act_scheme=scheme), seed)


@pytest.mark.parametrize("scheme", ["static", "dynamic-tensor", "dynamic-token"])
def test_the_engine_quantizes_activations_by_the_precisions_scheme(monkeypatch, scheme):
    from perfmodel.torchblocks.linear import Int8Linear

    engine = int8_engine(monkeypatch, scheme)
    linears = [m for _, attention, mlp in engine.layers
               for m in (attention.qkv, attention.o, mlp.gate_up, mlp.down)]
    assert len(linears) == 8
    assert all(isinstance(m, Int8Linear) and m.scheme == scheme for m in linears)


def test_static_int8_keeps_sequences_independent_and_dynamic_tensor_does_not(monkeypatch):
    """A static or per-token scale quantizes each row on its own: a sequence's logits do not
    depend on its batch neighbours (gaps ~5e-7 here). One amax over the whole tensor couples
    them (gaps ~0.06 on logits of magnitude ~4)."""
    tokens = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    for scheme, coupled in (("static", False), ("dynamic-token", False),
                            ("dynamic-tensor", True)):
        engine = int8_engine(monkeypatch, scheme)
        both = engine.prefill(tokens, engine.new_cache(2, 7))
        gaps = [(engine.prefill(tokens[r:r + 1], engine.new_cache(1, 7))[0] - both[r]).abs().max()
                for r in range(2)]
        assert torch.isfinite(both).all()
        assert (max(gaps).item() > 1e-3) == coupled, (scheme, gaps)
