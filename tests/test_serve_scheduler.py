"""The serving scheduler against hand-worked cases and invariants (property tests).

A toy step cost (a + b·tokens seconds, limit half of it) makes every time hand-computable; the
engines' policies and the state bookkeeping are the real ones.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel.serve.engines import engine_facts
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import simulate

A, B = 1e-3, 1e-5  # seconds per step, seconds per token of the toy cost
H100 = 80 * 1024 ** 3


class ToyCost:
    """Step time a + b·tokens (estimate), half that (limit)."""

    def step(self, decode_seqs, context_sum, chunks, samples):
        t = A + B * (decode_seqs + sum(n for _, n in chunks))
        return t, t / 2


def run(engine, reqs, *, concurrency=None, blocks=10_000, block_size=None, **knobs):
    facts = engine_facts(engine, H100).with_knobs(**knobs)
    size = block_size or facts.block_size
    arrivals = Arrivals(tuple(reqs), concurrency, None if concurrency else float("inf"))
    return simulate(arrivals, facts, blocks, size, ToyCost())


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_one_request_alone(engine):
    """TTFT = one prefill step; E2E adds O − 1 decode steps of one token each."""
    out = run(engine, [RequestSpec(100, 5)], concurrency=1)
    (done,) = out.done
    assert done.ttft == pytest.approx(A + B * 100)
    assert done.e2e == pytest.approx(A + B * 100 + 4 * (A + B))
    assert done.tpot == pytest.approx(A + B)
    assert done.ttft_lim == pytest.approx(done.ttft / 2)


def test_vllm_two_requests_share_one_prefill_step():
    out = run("vllm", [RequestSpec(100, 3), RequestSpec(50, 3)], concurrency=2)
    assert [d.ttft for d in out.done] == pytest.approx([A + B * 150] * 2)
    assert out.steps == 3  # one prefill step, two decode steps of two tokens


def test_vllm_chunks_a_long_prompt_to_the_token_budget():
    """A 300-token prompt under a 128-token budget: chunks of 128, 128, 44."""
    out = run("vllm", [RequestSpec(300, 1)], concurrency=1, max_num_batched_tokens=128)
    assert out.done[0].ttft == pytest.approx(3 * A + 300 * B)
    assert [row[2] for row in out.trace] == [128, 128, 44]


def test_sglang_prefill_batches_pause_decoding():
    """The second request's prefill step runs alone: the first request's decoding waits."""
    out = run("sglang", [RequestSpec(100, 4), RequestSpec(100, 4)], concurrency=2,
              max_num_batched_tokens=100)
    assert [row[1:3] for row in out.trace][:2] == [(0, 100), (0, 100)]


def test_trtllm_reserves_prompt_and_output_blocks():
    """GUARANTEED_NO_EVICT: with room for one request's I + O, the second waits for it."""
    out = run("trtllm", [RequestSpec(64, 64), RequestSpec(64, 64)], concurrency=2, blocks=4,
              block_size=32)
    first, second = sorted(out.done, key=lambda d: d.ttft)
    assert second.ttft >= first.e2e
    assert out.preemptions == 0


def test_vllm_preempts_and_recomputes_when_blocks_run_out():
    out = run("vllm", [RequestSpec(32, 40)] * 3, concurrency=3, blocks=10, block_size=16)
    assert len(out.done) == 3
    assert out.preemptions > 0
    assert max(row[3] for row in out.trace) <= 10


requests = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 60)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(engine=st.sampled_from(["vllm", "sglang", "trtllm"]), lengths=requests,
       concurrency=st.integers(1, 12), blocks=st.integers(24, 200),
       budget=st.sampled_from([64, 256, 8192]))
def test_invariants(engine, lengths, concurrency, blocks, budget):
    """Every request finishes; each output token is made once (by a decode step, or by the
    prefill that ends its first computation or a completed recomputation); the KV cache never overflows; TTFT is at least one
    prefill of the request's prompt; the limit never exceeds the estimate."""
    reqs = [RequestSpec(i, o) for i, o in lengths]
    size = 16
    blocks = max(blocks, max(-(-(i + o) // size) for i, o in lengths))
    out = run(engine, reqs, concurrency=concurrency, blocks=blocks, block_size=size,
              max_num_batched_tokens=budget)
    assert len(out.done) == len(reqs)
    assert sorted((d.isl, d.osl) for d in out.done) == sorted(lengths)
    decoded = sum(n for _, n in out.itl)
    assert decoded == sum(d.osl - 1 - d.recomputed for d in out.done)
    assert max(row[3] for row in out.trace) <= out.total_blocks
    assert out.peak_blocks <= out.total_blocks
    for d in out.done:
        assert d.ttft >= A + B * min(d.isl, budget) - 1e-12
        assert d.ttft_lim <= d.ttft and d.e2e_lim <= d.e2e


@settings(max_examples=25, deadline=None)
@given(engine=st.sampled_from(["vllm", "sglang", "trtllm"]),
       isl=st.integers(1, 500), osl=st.integers(2, 50), concurrency=st.integers(2, 32))
def test_batching_never_loses_to_serving_one_at_a_time(engine, isl, osl, concurrency):
    """With room for everything, C requests in flight make tokens at least as fast as one."""
    reqs = [RequestSpec(isl, osl)] * 40

    def rate(c):
        out = run(engine, reqs, concurrency=c, blocks=100_000)
        return sum(d.osl for d in out.done) / out.duration

    assert rate(concurrency) >= rate(1) * (1 - 1e-9)
