"""The decode-only fast path (serve/fast_forward.py) against the step-by-step loop it replaces.

Every seeded case runs the same requests twice through the real policies and KV state, once
with decode-only stretches run in one go and once step by step (simulate.FAST_FORWARD off), and
the two Outcomes must be equal field for field: every request's times on both clocks, every ITL
sample and trace row, the step count, preemptions and the KV peak. The cases are small and
varied so that every event cuts a stretch somewhere: finishes, block growth with and without
enough free blocks (preemption, SGLang retraction), SGLang's output clip and admission room,
vLLM partial prefills waiting for blocks, closed loops with a ramp and a client round trip,
open loops, prefix caching, and max_num_seqs or the token budget holding requests back.
"""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import replace

import pytest

from perfmodel.errors import WorkloadError
from perfmodel.serve.engines import engine_facts
from perfmodel.serve.metrics import _grouped_quantiles, _weighted_quantiles
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import simulate

H100 = 80 * 1024 ** 3
# the modules themselves (perfmodel.serve's `simulate` attribute is the function)
simulate_module = importlib.import_module("perfmodel.serve.simulate")
fast_forward = importlib.import_module("perfmodel.serve.fast_forward")


class CurvedCost:
    """A step time that is not affine in the context (a square root and a sine of it) and whose
    floats do not add up exactly, so that any reordering of the clock's sums would show."""

    def step(self, decode_seqs, context_sum, chunks, samples):
        new = decode_seqs + sum(t for _, t in chunks)
        prior = sum(p for p, _ in chunks)
        est = (1.1e-3 + 3.7e-6 * new + 1.3e-9 * context_sum + 2.9e-7 * math.sqrt(context_sum)
               + 1e-5 * math.sin(context_sum / 977.0) ** 2 + 7e-10 * prior + 1e-6 * samples)
        return est, est * 0.4142135623730951


def _case(seed: int):
    rng = random.Random(seed)
    if seed % 4 == 3:
        return _burst(rng)
    engine = rng.choice(["vllm", "sglang", "trtllm"])
    facts = engine_facts(engine, H100)
    facts = replace(facts, max_num_seqs=rng.choice([1, 2, 3, 8, 32]),
                    max_num_batched_tokens=rng.choice([64, 256, 2048]),
                    chunked_prefill=rng.random() < 0.75)
    closed = rng.random() < 0.6
    n = rng.randint(1, 30)
    prefixes = rng.random() < 0.25
    t, reqs = 0.0, []
    for _ in range(n):
        isl = rng.randint(1, 400)
        osl = rng.choice([1, 2, rng.randint(2, 300), rng.randint(300, 600)])
        t += rng.expovariate(rng.choice([5.0, 50.0, 500.0]))
        plen = rng.randint(0, isl) if prefixes else 0
        reqs.append(RequestSpec(isl, osl, None if closed else t, rng.randint(0, 2) if plen
                                else None, plen))
    # from a little more than the longest request needs (preemptions, requests waiting for
    # blocks) to plenty; SGLang's 1-token pages counted as the simulator's 16-token ones
    size = max(facts.block_size, 16)
    need = -(-max(r.isl + r.osl for r in reqs) // size)
    blocks = rng.randint(need + 1, need * rng.choice([2, 4, 40]))
    blocks *= size // facts.block_size
    arrivals = Arrivals(tuple(reqs), rng.randint(1, 12) if closed else None,
                        None if closed else 1.0)
    extra = {}
    if closed:
        extra = dict(ramp_s=rng.choice([0.0, 0.05]), client_delay_s=rng.choice([0.0, 0.003]))
    return facts, blocks, arrivals, extra


def _burst(rng: random.Random):
    """Every request at once into a KV pool a few requests fill (a max-throughput run): the
    queue waits on blocks, SGLang on its admission room, vLLM's partial prefills on blocks."""
    facts = replace(engine_facts(rng.choice(["vllm", "sglang", "sglang", "trtllm"]), H100),
                    max_num_seqs=rng.choice([4, 16, 64]),
                    max_num_batched_tokens=rng.choice([128, 512, 4096]))
    reqs = tuple(RequestSpec(rng.randint(50, 500), rng.randint(100, 500), 0.0)
                 for _ in range(rng.randint(10, 40)))
    size = max(facts.block_size, 16)
    need = -(-max(r.isl + r.osl for r in reqs) // size)
    blocks = rng.randint(need + 1, need * 6) * (size // facts.block_size)
    return facts, blocks, Arrivals(reqs, None, math.inf), {}


def _both(seed: int, monkeypatch, clip: int):
    facts, blocks, arrivals, extra = _case(seed)
    # SGLang's output clip (4096) lowered below these lengths so that it is met
    for module in ("state", "scheduler", "fast_forward"):
        monkeypatch.setattr(importlib.import_module(f"perfmodel.serve.{module}"),
                            "CLIP_NEW_TOKENS", clip)
    runs = []
    for fast in (True, False):
        monkeypatch.setattr(simulate_module, "FAST_FORWARD", fast)
        try:
            runs.append(simulate(arrivals, facts, blocks, facts.block_size, CurvedCost(),
                                 **extra))
        except WorkloadError as err:  # too little KV for the longest request, or a stall
            runs.append(str(err))
    return runs


def test_fast_path_equals_the_step_by_step_loop(monkeypatch):
    """200 seeded cases: the same Outcome either way, and the fast path ran most steps."""
    covered = [0]
    real = fast_forward.decode_stretch

    def counting(inst, horizon):
        ran = real(inst, horizon)
        covered[0] += ran
        return ran

    monkeypatch.setattr(simulate_module, "decode_stretch", counting)
    total = compared = 0
    for seed in range(200):
        fast, slow = _both(seed, monkeypatch, clip=[4096, 200, 40][seed % 3])
        assert fast == slow, f"seed {seed}"
        if not isinstance(slow, str):
            total += slow.steps
            compared += 1
    assert compared > 150
    assert covered[0] > total / 2  # the comparison is not vacuous: most steps went fast


def test_fast_path_is_off_where_a_step_makes_more_than_one_token(monkeypatch):
    """Speculative decoding (a tokens per step) stays on the step-by-step loop."""
    facts, blocks, arrivals, _ = _case(3)

    class Speculating(CurvedCost):
        tokens_per_step = 1.7
        queries_per_decoder = 3

    monkeypatch.setattr(simulate_module, "decode_stretch",
                        lambda inst, horizon: pytest.fail("fast path used"))
    simulate(arrivals, facts, blocks * 4, facts.block_size, Speculating())


def test_grouped_quantiles_equal_the_pairwise_pass():
    """ITL quantiles over counted like (value, weight) pairs equal the pass over every pair."""
    rng = random.Random(7)
    for _ in range(300):
        values = [rng.choice([0.5, 1.25, 2.0, 3.0, rng.random()]) for _ in range(
            rng.randint(1, 60))]
        pairs = [(v, rng.randint(1, 4)) for v in values]
        total = sum(w for _, w in pairs)
        groups: dict = {}
        for p in pairs:
            groups[p] = groups.get(p, 0) + 1
        qs = (0.5, 0.9, 0.99)
        assert _grouped_quantiles(sorted(groups.items()), total, qs) == \
            _weighted_quantiles(sorted(pairs), qs)


def test_a_run_without_its_trace_has_every_other_figure():
    """keep_trace=False (serve without --trace, plan) leaves the trace empty and nothing else
    changed: the same document, byte for byte, and the same requests and ITL samples."""
    from perfmodel.serve import run_serve

    kw = dict(gpu="h200-measured", concurrency=4, isl=300, osl=200, num_requests=40)
    kept = run_serve("meta-llama/Llama-3.1-8B", **kw)
    lean = run_serve("meta-llama/Llama-3.1-8B", keep_trace=False, **kw)
    assert kept.outcome.trace and lean.outcome.trace == ()
    assert lean.result.to_json() == kept.result.to_json()
    assert lean.outcome.done == kept.outcome.done and lean.outcome.itl == kept.outcome.itl
