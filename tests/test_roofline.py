"""Hand-worked roofline answers (the scaling book's method) and exact averaging."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings, strategies as st
import pytest

from perfmodel.cost.ops import causal_pairs, forward_ops, touched_experts
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.roofline import cost, mean_of_max
from perfmodel.cost.workload import Workload


def test_matmul_roofline_by_hand(llama8b, h100):
    """gate_up of Llama-3.1-8B at M = 4096 tokens: 2·4096·4096·28672 FLOPs, compute-bound."""
    ops = forward_ops(llama8b, preset("bf16"), "prefill", 1, 4096, 4096)
    gate_up = next(op for op in ops if op.name == "gate_up")
    flops = 2 * 4096 * 4096 * 28672
    bytes_ = 2 * (4096 * 28672 + 4096 * 4096 + 4096 * 28672)
    assert gate_up.flops == flops and gate_up.bytes == bytes_
    c = cost(gate_up, h100)
    assert c.compute_s == pytest.approx(32 * flops / 9.89e14)
    assert c.memory_s == pytest.approx(32 * bytes_ / 3.35e12)
    assert c.bound == "compute"


def test_llama8b_weights_and_decode_limit(llama8b, h100):
    """Weights 16.06e9 B in bf16; batch-1 decode at 1024 tokens reads every weight but the
    input-embedding table (a step gathers one row of it) plus the KV cache."""
    pred = predict(llama8b, preset("bf16"), h100, Workload(1, 1023, 2))
    assert pred.memory.weights_bytes == pytest.approx(16.06e9, rel=0.01)
    kv = 1024 * 32 * 2 * 8 * 128 * 2
    read = pred.memory.weights_bytes - 128256 * 4096 * 2 + kv
    assert pred.limit["itl_s"] == pytest.approx(read / 3.35e12, rel=0.01)
    # The napkin (weights + KV) / bandwidth = 4.83 ms counts the 1.05 GB embedding
    # table too; we are 6.5% under it for that reason alone.
    assert pred.limit["itl_s"] == pytest.approx((16.06e9 + kv) / 3.35e12, rel=0.07)


def test_causal_pairs():
    assert causal_pairs(4, None) == 10
    assert causal_pairs(4, 2) == sum(min(t, 2) for t in range(1, 5))
    assert causal_pairs(3, 8) == 6


def test_touched_experts():
    assert touched_experts(128, 8, 1) == pytest.approx(8)
    assert touched_experts(8, 2, 10**6) == pytest.approx(8)
    # B·T tokens at top-k of E under uniform routing
    assert touched_experts(64, 4, 16) == pytest.approx(64 * (1 - (1 - 4 / 64) ** 16))
    # an EP shard whose tokens bring as many pairs as it has experts, or more (Mixtral over EP8:
    # one local expert, 2 pairs a token): every local expert is touched, for any token count
    for tokens in (1, 2, 3, 64):
        assert touched_experts(1, 2, tokens) == 1 and touched_experts(2, 2, tokens) == 2


@settings(deadline=None)  # no per-example time limit: a loaded machine must not fail it
@given(st.floats(0, 10), st.floats(0, 10), st.floats(0, 10), st.floats(0, 10),
       st.integers(1, 300))
def test_mean_of_max_is_exact(c0, m0, c1, m1, n):
    if n == 1:
        c1, m1 = c0, m0
    xs = [i / (n - 1) if n > 1 else 0 for i in range(n)]
    brute = sum(max(c0 + (c1 - c0) * x, m0 + (m1 - m0) * x) for x in xs) / n
    assert mean_of_max(c0, m0, c1, m1, n) == pytest.approx(brute, rel=1e-9, abs=1e-12)


def test_itl_is_mean_of_steps(llama8b, h100):
    """ITL is the mean of the O−1 decode steps, step j attending to I + j tokens."""
    w = Workload(4, 100, 9)
    pred = predict(llama8b, preset("fp8"), h100, w)
    steps = [sum(cost(op, h100).limit_s for op in forward_ops(
        llama8b, preset("fp8"), "decode", 4, 1, w.input_len + j) if not op.fusable)
        for j in range(1, 9)]
    assert pred.limit["itl_s"] == pytest.approx(sum(steps) / 8, rel=1e-9)


def test_metrics_by_definition(llama8b, h100):
    w = Workload(8, 512, 64)
    lim = predict(llama8b, preset("bf16"), h100, w).limit
    assert lim["throughput_tok_s"] == pytest.approx(
        8 * 64 / (lim["ttft_s"] + 63 * lim["itl_s"]))
    assert lim["decode_tok_s"] == pytest.approx(8 / lim["itl_s"])
    one = predict(llama8b, preset("bf16"), h100, Workload(2, 512, 1)).limit
    assert one["itl_s"] is None and one["throughput_tok_s"] == pytest.approx(2 / one["ttft_s"])


def test_precision_axes(llama8b, h100):
    """int4 is weight-only: prefill at the bf16 rate; fp8 W8A8 at the fp8 rate."""
    w = Workload(1, 8192, 2)
    bf16 = predict(llama8b, preset("bf16"), h100, w).limit
    int4 = predict(llama8b, preset("int4"), h100, w).limit
    fp8 = predict(llama8b, preset("fp8"), h100, w).limit
    assert int4["ttft_s"] == pytest.approx(bf16["ttft_s"], rel=0.02)
    assert fp8["ttft_s"] < bf16["ttft_s"]
    # W8A8 matmuls run at the fp8 rate (2x bf16 on an H100); attention stays bf16.
    prefill = {p: {c.op.name: c for c in predict(llama8b, preset(p), h100, w).prefill.costs}
               for p in ("bf16", "fp8")}
    assert prefill["fp8"]["down"].compute_s == pytest.approx(prefill["bf16"]["down"].compute_s * 9.89e14 / 1.979e15)
    assert prefill["fp8"]["attention"].limit_s == prefill["bf16"]["attention"].limit_s
    assert int4["itl_s"] < fp8["itl_s"] < bf16["itl_s"]


def test_kv_dtype_halves_kv(llama8b, h100):
    from perfmodel.cost.precision import with_kv

    a = predict(llama8b, preset("bf16"), h100, Workload(1, 1000, 10)).memory
    b = predict(llama8b, with_kv(preset("bf16"), "fp8"), h100, Workload(1, 1000, 10)).memory
    assert b.kv_bytes_per_token == a.kv_bytes_per_token / 2 == 32 * 2 * 8 * 128
    assert b.weights_bytes == a.weights_bytes


def test_missing_fp8_rate_is_a_clear_error(llama8b, h100):
    from perfmodel.errors import WorkloadError

    no_fp8 = replace(h100, peak_flops={**h100.peak_flops, "fp8": None})
    with pytest.raises(WorkloadError, match="no fp8 tensor-core rate.*--precision"):
        predict(llama8b, preset("fp8"), no_fp8, Workload(1, 16, 2))


def test_limit_sums_matmuls_and_attention_only(llama8b, h100):
    """The seed's method: elementwise ops keep their own roofline but stay out of the limit."""
    pred = predict(llama8b, preset("bf16"), h100, Workload(8, 4096, 2))
    kinds = {c.op.kind for c in pred.prefill.costs if not c.op.fusable}
    assert kinds == {"matmul", "attention"}
    total = sum(c.limit_s for c in pred.prefill.costs)
    fusable = sum(c.limit_s for c in pred.prefill.costs if c.op.kind == "elementwise")
    assert fusable > 0.05 * total  # the elementwise share is large enough to matter
    assert pred.limit["ttft_s"] == pytest.approx(total - fusable, rel=1e-12)
    assert pred.prefill.fusable_s == pytest.approx(fusable, rel=1e-12)


def _step_limit(spec, gpu, phase, batch, tokens, prec="bf16"):
    from perfmodel.cost.predict import step

    return step(spec, preset(prec), gpu, phase, batch, tokens)


def test_kv_cache_at_128k_by_hand(llama8b, h100):
    """Decode at B = 8, C = 131072: the KV cache (137 GB) is 90% of the bytes. Attention's
    limit is exactly B·C·L·2·K·H·2 bytes plus Q and O, over the bandwidth."""
    ph = _step_limit(llama8b, h100, "decode", 8, 131072)
    attn = next(c for c in ph.costs if c.op.name == "attention")
    kv = 8 * 131072 * 32 * 2 * 8 * 128 * 2
    io = 32 * 8 * 32 * 256 * 2
    assert attn.limit_s == pytest.approx((kv + io) / 3.35e12, rel=1e-12)
    weights = sum(c.op.count * c.op.bytes for c in ph.costs if c.op.kind == "matmul")
    assert ph.limit_s == pytest.approx((weights + kv + io) / 3.35e12, rel=1e-9)
    assert kv > 0.85 * (weights + kv + io)


GEMMA3_27B = {  # the text_config fields of google/gemma-3-27b-it's config.json
    "model_type": "gemma3_text", "hidden_size": 5376, "intermediate_size": 21504,
    "num_hidden_layers": 62, "num_attention_heads": 32, "num_key_value_heads": 16,
    "head_dim": 128, "vocab_size": 262208, "sliding_window": 1024,
    "sliding_window_pattern": 6, "query_pre_attn_scalar": 168, "tie_word_embeddings": True,
}


def test_sliding_window_crossed_at_decode_by_hand(h100):
    """gemma-3-27b, B = 8, C = 32768: the 52 sliding layers read 1024 cached tokens, the 10
    global layers all 32768. A decode that ignored the window would read 32× more."""
    from perfmodel.model.architectures import model_spec

    spec = model_spec(dict(GEMMA3_27B))
    ph = _step_limit(spec, h100, "decode", 8, 32768)
    attn = {c.op.group: c for c in ph.costs if c.op.name == "attention"}
    assert set(attn) == {"sliding 1024", "global"}
    io = 8 * 32 * 256 * 2
    for group, layers, s in (("sliding 1024", 52, 1024), ("global", 10, 32768)):
        assert attn[group].op.count == layers
        assert attn[group].limit_s == pytest.approx(
            layers * (8 * s * 16 * 256 * 2 + io) / 3.35e12, rel=1e-12)
    norms = [c.op.name for c in ph.costs if c.op.group == "global" and "norm" in c.op.name]
    assert norms == ["attn_norm", "qk_norm", "post_attn_norm", "mlp_norm", "post_mlp_norm"]


def test_prefill_lm_head_runs_on_the_last_token_only(llama8b, h100):
    """B = 4 prompts of T = 8192: logits for 4 tokens, 2·4·D·V FLOPs, not 2·32768·D·V (which
    would add 8.7 ms at the bf16 peak)."""
    ph = _step_limit(llama8b, h100, "prefill", 4, 8192)
    head = next(c for c in ph.costs if c.op.name == "lm_head")
    assert head.op.flops == 2 * 4 * 4096 * 128256
    assert head.limit_s == pytest.approx(
        (128256 * 4096 * 2 + 4 * 4096 * 2 + 4 * 128256 * 2) / 3.35e12, rel=1e-12)


def test_max_batch_by_hand(llama8b, h100):
    """80e9 bytes minus 16.06e9 of weights, over 2048 tokens · 131072 B/token of bf16 KV."""
    mem = predict(llama8b, preset("bf16"), h100, Workload(1, 1024, 1024)).memory
    per_seq = 2048 * 32 * 2 * 8 * 128 * 2
    assert mem.kv_bytes_per_sequence == per_seq
    assert mem.max_batch == int((8.0e10 - mem.weights_bytes) // per_seq) == 238
