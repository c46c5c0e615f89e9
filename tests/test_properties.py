"""Properties over random valid configs and workloads (hypothesis): no crash, monotone limits,
lower precisions never slower on memory-bound decode; and the estimate over every bundled
profile and engine preset: never below the limit, never falling as batch or length grow."""

from __future__ import annotations

import functools

import pytest
from hypothesis import assume, given, settings, strategies as st

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


# ---- the estimate over every bundled profile and preset ----

from perfmodel.bench import check_grid, engine_names  # noqa: E402
from perfmodel.cost.estimate import estimator_for  # noqa: E402
from perfmodel.cost.precision import PRECISIONS, on_gpu  # noqa: E402
from perfmodel.cost.predict import step  # noqa: E402
from perfmodel.hardware.gpu import bundled_names, load_gpu  # noqa: E402
from perfmodel.model.source import bundled_models, load_model_config  # noqa: E402

# CI runs the ends and the middle of each axis (82,080 steps, ~9 s of CPU); the full grid of
# 6 batches × 5 lengths (273,600 steps) is `python -m perfmodel.bench --grid`
# (docs/benchmark.md), and the hypothesis test below samples the points between.
CI_BATCHES, CI_LENGTHS = (1, 16, 512), (128, 4096, 131072)


@pytest.fixture(scope="module")
def grid():
    """Every bundled model × profile × preset × precision × B in 1-512 × length 128-128k,
    prefill and decode, each step computed once."""
    return check_grid(batches=CI_BATCHES, lengths=CI_LENGTHS)


def test_grid_covers_every_bundled_input(grid):
    per_step = len(CI_BATCHES) * len(CI_LENGTHS) * 2 * len(bundled_models())
    assert grid.points >= per_step * len(bundled_names()) * len(engine_names()) * 3
    assert grid.points % per_step == 0


def test_estimate_never_below_the_limit_on_the_grid(grid):
    assert not grid.below_limit, "\n".join(grid.below_limit[:10])


def test_estimate_never_falls_as_batch_or_length_grow_on_the_grid(grid):
    assert not grid.falls, "\n".join(grid.falls[:10])


@functools.cache
def _resolved(gpu_name, precision, engine, model):
    gpu = load_gpu(gpu_name)
    prec = on_gpu(preset(precision), gpu.peak_flops, gpu.name)
    if gpu.peak(prec.compute_dtype) is None:
        return None
    est = estimator_for(gpu, prec, engine).estimator
    return (model_spec(load_model_config(model).config), prec, gpu, est) if est else None


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(bundled_names()), st.sampled_from(PRECISIONS),
       st.sampled_from(engine_names()), st.sampled_from(bundled_models()),
       st.sampled_from(["prefill", "decode"]), st.integers(1, 512), st.integers(1, 64),
       st.integers(16, 131072), st.integers(1, 8192))
def test_estimate_is_a_monotone_upper_bound_of_the_limit(gpu, precision, engine, model, phase,
                                                         batch, more_batch, length, more):
    resolved = _resolved(gpu, precision, engine, model)
    assume(resolved is not None)
    spec, prec, profile, est = resolved
    base = step(spec, prec, profile, phase, batch, length, est)
    assert base.estimate_s >= base.limit_s * (1 - 1e-9)
    for b, n in ((batch + more_batch, length), (batch, length + more)):
        bigger = step(spec, prec, profile, phase, b, n, est)
        assert bigger.estimate_s >= base.estimate_s * (1 - 1e-9), (b, n)
        assert bigger.estimate_s >= bigger.limit_s * (1 - 1e-9)
