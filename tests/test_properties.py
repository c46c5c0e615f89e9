"""Properties over random valid configs and workloads (hypothesis): no crash, monotone limits,
lower precisions never slower on memory-bound decode."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from perfmodel.model.architectures import model_spec
from perfmodel.hardware.gpu import parse_gpu
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload


@st.composite
def configs(draw):
    heads = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8, 16, 32) if heads % h == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    cfg = {"model_type": draw(st.sampled_from(["llama", "qwen3", "mistral", "gemma2", "mixtral",
                                                "qwen3_moe"])),
           "hidden_size": heads * head_dim, "num_attention_heads": heads,
           "num_key_value_heads": kv, "head_dim": head_dim,
           "num_hidden_layers": draw(st.integers(1, 8)),
           "intermediate_size": draw(st.integers(1, 64)) * 64,
           "vocab_size": draw(st.integers(100, 200_000)),
           "tie_word_embeddings": draw(st.booleans()),
           "sliding_window": draw(st.sampled_from([None, 16, 256, 4096]))}
    if cfg["model_type"] in ("mixtral", "qwen3_moe"):
        experts = draw(st.sampled_from([4, 8, 64, 128]))
        cfg.update(num_local_experts=experts, num_experts=experts,
                   num_experts_per_tok=draw(st.integers(1, min(8, experts))),
                   moe_intermediate_size=draw(st.integers(1, 32)) * 64)
    if cfg["model_type"] == "gemma2" and cfg["sliding_window"] is None:
        cfg["sliding_window"] = 64
    return cfg


from conftest import H100_SHEET  # noqa: E402

H100 = parse_gpu(dict(H100_SHEET))
workloads = st.tuples(st.integers(1, 64), st.integers(1, 20_000), st.integers(2, 300))


@settings(max_examples=150, deadline=None)
@given(configs(), workloads, st.integers(1, 5000), st.integers(1, 64))
def test_limits_never_fall_as_context_or_batch_grow(cfg, wl, more_ctx, more_batch):
    spec = model_spec(cfg)
    batch, input_len, output_len = wl
    prec = preset("bf16")
    base = predict(spec, prec, H100, Workload(batch, input_len, output_len)).limit
    longer = predict(spec, prec, H100, Workload(batch, input_len + more_ctx, output_len)).limit
    wider = predict(spec, prec, H100, Workload(batch + more_batch, input_len, output_len)).limit
    for metric in ("ttft_s", "itl_s"):
        assert longer[metric] >= base[metric] * (1 - 1e-12)
        assert wider[metric] >= base[metric] * (1 - 1e-12)
    assert all(v is None or v > 0 for v in base.values())


@settings(max_examples=100, deadline=None)
@given(configs(), st.integers(1, 8), st.integers(1, 8192))
def test_fp8_and_int4_never_slower_on_memory_bound_decode(cfg, batch, input_len):
    spec = model_spec(cfg)
    w = Workload(batch, input_len, 4)
    bf16 = predict(spec, preset("bf16"), H100, w)
    for name in ("fp8", "int4"):
        other = predict(spec, preset(name), H100, w)
        assert other.limit["itl_s"] <= bf16.limit["itl_s"] * (1 + 1e-12)
        assert other.memory.weights_bytes <= bf16.memory.weights_bytes
