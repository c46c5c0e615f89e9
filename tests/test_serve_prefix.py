"""Prefix caching in the serving simulator against hand-worked cases (serve/prefix_cache.py).

A toy step cost whose time grows with the new tokens and, separately, with the cached context a
chunk starts at makes every TTFT hand-computable; the engines' policies, the KV state and the
prefix cache are the real ones.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.errors import WorkloadError
from perfmodel.serve import run_serve
from perfmodel.serve.engines import engine_facts
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import _Run, simulate

A, B, C = 1e-3, 1e-5, 1e-7  # s per step, per new token, per cached token a chunk reads
H100 = 80 * 1024 ** 3
MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"


class ToyCost:
    """Step time A + B·(new tokens) + C·(context the chunks start at); limit half of it."""

    def step(self, decode_seqs, context_sum, chunks, samples):
        t = A + B * (decode_seqs + sum(n for _, n in chunks)) + C * sum(p for p, _ in chunks)
        return t, t / 2


def prefill(new, cached=0):
    return A + B * new + C * cached


def run(engine, reqs, *, concurrency=1, blocks=10_000, caching=True):
    facts = engine_facts(engine, H100)
    arrivals = Arrivals(tuple(reqs), concurrency, None)
    return simulate(arrivals, facts, blocks, facts.block_size, ToyCost(),
                    prefix_caching=caching)


def shared(isl, plen, pid=0, osl=1):
    return RequestSpec(isl, osl, prefix_id=pid, prefix_len=plen)


@pytest.mark.parametrize("engine, cached", [("vllm", 32), ("sglang", 40), ("trtllm", 40)])
def test_second_request_prefills_only_past_the_cached_prefix(engine, cached):
    """One client, two 140-token prompts sharing 40 tokens: the second, on an idle engine,
    prefills 140 − cached tokens over the cached context. vLLM caches whole 16-token blocks
    only (40 → 32); SGLang's radix tree and TensorRT-LLM's partial block reuse match tokens."""
    out = run(engine, [shared(140, 40), shared(140, 40)])
    first, second = out.done
    assert first.ttft == pytest.approx(prefill(140)) and first.cached == 0
    assert second.cached == cached
    assert second.ttft == pytest.approx(prefill(140 - cached, cached))
    assert out.prefix.cached_tokens == cached and out.prefix.prompt_tokens == 280
    assert out.prefix.hit_rate == pytest.approx(cached / 280)


@pytest.mark.parametrize("engine, cached", [("vllm", 48), ("sglang", 63)])
def test_a_prompt_that_is_all_prefix_still_computes_its_last_token(engine, cached):
    """A hit is at most the prompt less one token (the last token's logits), then rounded
    down to vLLM's block: a 64-token prompt reuses 63 tokens on SGLang, 48 on vLLM."""
    out = run(engine, [shared(64, 64), shared(64, 64)])
    assert out.done[1].cached == cached
    assert out.done[1].ttft == pytest.approx(prefill(64 - cached, cached))


def test_different_prefix_ids_share_nothing():
    out = run("sglang", [shared(140, 40, pid=1), shared(140, 40, pid=2)])
    assert [d.cached for d in out.done] == [0, 0]
    assert out.done[1].ttft == pytest.approx(prefill(140))


def test_prefix_caching_off_prefills_every_prompt_whole():
    out = run("vllm", [shared(140, 40), shared(140, 40)], caching=False)
    assert [d.ttft for d in out.done] == pytest.approx([prefill(140)] * 2)
    assert out.prefix is None


def test_vllm_shares_a_block_cached_earlier_in_the_same_step():
    """vLLM caches a block when it is scheduled (allocate_slots), so the second of two
    requests admitted in one step already reuses the first one's 32 prefix tokens."""
    out = run("vllm", [shared(140, 40), shared(140, 40)], concurrency=2)
    assert out.trace[0][2] == 140 + 108
    assert sorted(d.cached for d in out.done) == [0, 32]


def test_sglang_shares_only_what_an_earlier_step_computed():
    """SGLang inserts a prefill into its radix tree once computed: two prompts in one prefill
    batch both compute the prefix."""
    out = run("sglang", [shared(140, 40), shared(140, 40)], concurrency=2)
    assert out.trace[0][2] == 280


def test_vllm_evicts_the_prefix_tail_first_when_allocation_reaches_it():
    """Ten 16-token blocks. A (65 tokens, the first 64 a prefix) takes 5 blocks and leaves:
    the free queue is then 5 never-used blocks, A's partial last block, then its 4 prefix
    blocks (vLLM frees a request's blocks tail first). B (128 tokens, no prefix) takes 8: the
    6 ahead and the prefix's last two blocks. C (A's prefix again) finds 32 tokens."""
    reqs = [shared(65, 64), RequestSpec(128, 1), shared(65, 64)]
    out = run("vllm", reqs, blocks=10)
    a, b, c = out.done
    assert c.cached == 32 and c.ttft == pytest.approx(prefill(65 - 32, 32))
    assert out.prefix.evicted_tokens == 32
    bigger = run("vllm", reqs, blocks=11)  # one more block ahead: only one prefix block goes
    assert bigger.done[2].cached == 48 and bigger.prefix.evicted_tokens == 16


def test_a_prefix_held_by_a_running_request_stays_cached():
    """Fourteen blocks, two clients. A (65 tokens, 64 of them a prefix, 40 out) and B (128
    tokens, 1 out) take 13; B leaves after one step and its client sends C (A's prefix): A
    still holds the prefix, so C reuses all 64 tokens (the 65th is its own) in a step beside
    A's decode."""
    reqs = [shared(65, 64, osl=40), RequestSpec(128, 1), shared(65, 64)]
    out = run("vllm", reqs, concurrency=2, blocks=14)
    c = next(d for d in out.done if d.index == 2)
    assert c.cached == 64 and c.ttft == pytest.approx(A + B * (1 + 1) + C * 64)
    assert out.prefix.evicted_tokens == 0


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["vllm", "sglang", "trtllm"]), st.integers(0, 10_000))
def test_blocks_are_accounted_and_hits_bounded(engine, seed):
    """At every step free + blocks the running requests own + blocks of held prefixes = the
    pool; every request finishes; a hit never reaches the prompt's last token."""
    rng = random.Random(seed)
    facts = engine_facts(engine, H100)
    reqs = []
    for _ in range(rng.randint(1, 25)):
        isl = rng.randint(2, 300)
        reqs.append(RequestSpec(isl, rng.randint(1, 60), prefix_id=rng.randint(0, 3),
                                prefix_len=rng.randint(0, isl)))
    blocks = rng.randint(25, 120) * (16 if engine == "sglang" else 1)
    sim = _Run(Arrivals(tuple(reqs), rng.randint(1, 8), None), facts, blocks,
               facts.block_size, ToyCost())
    state = sim.state
    while sim.step():
        owned = sum(s.blocks - s.shared for s in state.running)
        held = sum(e.blocks for e in state.cache.entries.values() if e.refs) \
            if state.cache is not None else 0
        assert state.free >= 0 and state.free + owned + held == state.total_blocks
    assert len(sim.done) == len(reqs) and state.free == state.total_blocks
    assert all(d.cached <= d.isl - 1 for d in sim.done)


def test_run_serve_prefix_len_adds_to_the_prompt_and_off_is_the_longer_prompt():
    """--prefix-len N --isl I: prompts of N + I tokens (vllm bench serve's random dataset);
    with prefix caching off the run is that of --isl N + I, figure for figure."""
    kw = dict(gpu=GPU, concurrency=8, osl=32, num_requests=40)
    off = run_serve(MODEL, isl=256, prefix_len=768, prefix_caching=False, **kw).metrics
    plain = run_serve(MODEL, isl=1024, **kw).metrics
    assert off["prefix_cache"] == {"enabled": False, "granularity_tokens": None,
                                   "prompt_tokens": 40 * 1024, "cached_tokens": 0,
                                   "hit_rate": 0.0, "prefill_tokens_saved": 0,
                                   "evicted_tokens": 0}
    assert off["workload"].pop("prefix_len") == 768 and off["workload"].pop("num_prefixes") == 1
    del off["prefix_cache"]
    assert off["workload"].pop("isl") == 256 and plain["workload"].pop("isl") == 1024
    assert off == plain
    on = run_serve(MODEL, isl=256, prefix_len=768, **kw).metrics
    assert on["prefix_cache"]["cached_tokens"] >= 39 * 768  # all but the first wave's misses
    assert on["ttft_s"]["median"] < plain["ttft_s"]["median"]
    assert on["limit"]["ttft_s"]["mean"] <= on["ttft_s"]["mean"]
    assert "prefix_cache" not in plain


def test_num_prefixes_cycle_and_lengths_columns(tmp_path):
    from perfmodel.serve.requests import make_arrivals
    from perfmodel.serve.shared_prefix import with_prefixes

    base = make_arrivals(concurrency=2, request_rate=None, isl=100, osl=10, num_requests=6,
                         lengths=None, seed=0)
    reqs = with_prefixes(base, 50, 3).requests
    assert [(r.isl, r.prefix_id, r.prefix_len) for r in reqs] == \
        [(150, i % 3, 50) for i in range(6)]
    path = tmp_path / "l.jsonl"
    path.write_text('{"input_len": 300, "output_len": 5, "prefix_id": 7, "prefix_len": 200}\n'
                    '{"input_len": 80, "output_len": 5}\n')
    arr = make_arrivals(concurrency=1, request_rate=None, isl=1, osl=1, num_requests=4,
                        lengths=str(path), seed=0)
    assert [(r.isl, r.prefix_id, r.prefix_len) for r in with_prefixes(arr, 0, 1, str(path))
            .requests] == [(300, 7, 200), (80, 0, 0)] * 2
    for bad, text in (({"prefix_len": 400}, "longer than its input_len"),
                      ({"prefix_id": -1}, "prefix_id")):
        path.write_text(json.dumps({"input_len": 300, "output_len": 5, **bad}) + "\n")
        arr = make_arrivals(concurrency=1, request_rate=None, isl=1, osl=1, num_requests=1,
                            lengths=str(path), seed=0)
        with pytest.raises(WorkloadError, match=text):
            with_prefixes(arr, 0, 1, str(path))
    with pytest.raises(WorkloadError, match="--num-prefixes needs --prefix-len"):
        with_prefixes(base, 0, 2)


def test_cli_prefix_options():
    args = ["serve", MODEL, "--gpu", GPU, "--concurrency", "4", "--num-requests", "12",
            "--isl", "256", "--osl", "8"]
    ok = CliRunner().invoke(app, [*args, "--prefix-len", "256", "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["workload"]["prefix_len"] == 256 and doc["prefix_cache"]["enabled"]
    assert doc["prefix_cache"]["granularity_tokens"] == 16
    text = CliRunner().invoke(app, [*args, "--prefix-len", "256", "--num-prefixes", "2"])
    assert text.exit_code == 0 and "prefix cache hit rate" in text.output
    off = CliRunner().invoke(app, [*args, "--prefix-len", "256", "--no-prefix-caching"])
    assert off.exit_code == 0 and "prefix caching off" in off.output
    for bad, msg in ((["--num-prefixes", "2"], "--num-prefixes needs"),
                     (["--prefix-len", "-3"], "--prefix-len"),
                     (["--prefix-len", "64", "--disagg", "1x1:1x1"], "not modelled with --disagg")):
        res = CliRunner().invoke(app, [*args, *bad])
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output


def test_validate_runs_read_the_points_prefix_and_pass_it_to_serve(tmp_path):
    """A benchmark result with a shared prefix (calibrate-engine's random_prefix_len, else the
    `.pP` of the point's tag in its file name) is simulated as prefix + the rest of the
    prompt, with the server's prefix caching."""
    from conftest import ROOT

    from perfmodel.validate.engine_fit import simulate as simulate_run
    from perfmodel.validate.engine_runs import read_runs

    src = ROOT / "docs" / "data" / "engines" / "vllm-0.26.0-h200" / "llama8b-bf16"
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    for name in ("run.json", "server.log"):
        (run / name).write_text((src / name).read_text())
    raw = json.loads((src / "results" / "llama8b-bf16.1024.256.c64.rinf.json").read_text())
    (run / "results" / "a.1024.256.c64.rinf.json").write_text(
        json.dumps({**raw, "random_prefix_len": 512}))
    (run / "results" / "b.768.256.c64.rinf.p256.json").write_text(json.dumps(raw))
    found = {r.id.split("/")[-1][0]: r for r in read_runs(run)}
    assert found["a"].prefix_len == 512 and found["b"].prefix_len == 256
    got = simulate_run(found["a"], GPU)
    assert got.workload.options["prefix_len"] == 512 and got.workload.isl == 1024 - 512
    assert got.prefix_cache.enabled and got.prefix_cache.hit_rate > 0.4


PREFIX_RUNS = "vllm-0.26.0-h200-prefix-bursty"
# vLLM 0.26.0 on one H200 (docs/data/engines/vllm-0.26.0-h200-prefix-bursty, 2026-12-04):
# 2048-token prompts sharing 0, 1024 or 1843 tokens (--random-prefix-len), 128 out, at one
# client (6 requests), 32 clients (128) and 8 requests/s (160)
PREFIX_POINTS = [f"{isl}.128.{load}{tail}" for load in ("c1.rinf", "c32.rinf", "c256.r8")
                 for isl, tail in ((2048, ""), (1024, ".p1024"), (205, ".p1843"))]


def test_prefix_hits_equal_vllms_own_counters_and_figures_hold(tmp_path):
    """Ground truth: vLLM's prefix-cache counters read around each point (queries = prompt
    tokens, hits = tokens found cached). The simulation's cached tokens equal them exactly:
    every request after the first reuses the prefix rounded down to 16-token blocks (1843 →
    1840), the cold wave's too (vLLM caches a block when it is scheduled). Its median TTFT and
    output tokens/s stay within the errors measured when this was written (docs/serving.md,
    "Prefix caching": at most 25% and 13%), and the TTFT limit stays under the measurement."""
    import shutil

    from conftest import ROOT

    from perfmodel.validate.engine_fit import simulate as simulate_run
    from perfmodel.validate.engine_runs import read_runs

    src = ROOT / "docs" / "data" / "engines" / PREFIX_RUNS / "llama8b-bf16-features"
    run = tmp_path / "llama8b-bf16-features"
    (run / "results").mkdir(parents=True)
    for name in ("run.json", "server.log"):
        shutil.copy(src / name, run / name)
    for point in PREFIX_POINTS:
        shutil.copy(src / "results" / f"llama8b-bf16-features.{point}.json", run / "results")
    runs = read_runs(tmp_path)
    assert len(runs) == 9
    for r in runs:
        raw = json.loads((tmp_path / r.id).read_text())
        got = simulate_run(r, "h200-measured")
        cache = got.prefix_cache
        tokens = (cache.prompt_tokens, cache.cached_tokens) if cache else \
            (r.isl * r.num_requests, 0)
        assert tokens == (raw["prefix_cache_queries"], raw["prefix_cache_hits"]), r.id
        assert abs(got.ttft_s.median * 1e3 / raw["median_ttft_ms"] - 1) < 0.30, r.id
        assert abs(got.throughput.output_tok_s / raw["output_throughput"] - 1) < 0.15, r.id
        assert got.limit.ttft_s.median * 1e3 < raw["median_ttft_ms"], r.id


@pytest.mark.parametrize("router, misses", [("round-robin", 14), ("prefix-affinity", 7)])
def test_a_fleet_computes_each_prefix_once_per_replica_that_sees_it(router, misses):
    """Two replicas, 7 prefixes of 2048 tokens taken round-robin by 70 requests: round-robin
    routing sends every prefix to both replicas (7 is odd), so each computes it once (14
    misses); prefix-affinity keeps each prefix on one replica (7). Every other request reuses
    all 2048 tokens (vLLM blocks of 16)."""
    doc = run_serve(MODEL, gpu=GPU, concurrency=16, isl=512, osl=16, num_requests=70,
                    prefix_len=2048, num_prefixes=7, replicas=2, router=router).metrics
    assert doc["prefix_cache"]["cached_tokens"] == (70 - misses) * 2048
    assert doc["prefix_cache"]["prompt_tokens"] == 70 * (2048 + 512)
