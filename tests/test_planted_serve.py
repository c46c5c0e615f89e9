"""Serving tests that bite: each checks one property against a truth found outside the code
(probability theory, Little's law, an engine's source or log, a hand calculation), so that a
one-line slip in the simulator that moves the results fails here (tools/plant_bugs.py plants
such slips and checks that these tests catch them; docs/validation.md, "Tests that bite")."""

from __future__ import annotations

import math

import pytest

from conftest import H100_SHEET
from perfmodel.serve import run_serve
from perfmodel.serve.engines import engine_facts
from perfmodel.serve.metrics import itl_summary, metrics
from perfmodel.serve.requests import Arrivals, RequestSpec, make_arrivals
from perfmodel.serve.simulate import Done, Outcome, simulate

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
H100 = 80 * 1024 ** 3


class ToyCost:
    """Step time 1 ms + 10 µs a token (estimate), half that (limit): the schedule is the
    engine policy's own, the times hand-computable."""

    def step(self, decode_seqs, context_sum, chunks, samples):
        t = 1e-3 + 1e-5 * (decode_seqs + sum(n for _, n in chunks))
        return t, t / 2


def _simulate(engine, reqs, concurrency=None, **knobs):
    facts = engine_facts(engine, H100).with_knobs(**knobs)
    arrivals = Arrivals(tuple(reqs), concurrency, None if concurrency else float("inf"))
    return simulate(arrivals, facts, 100_000, facts.block_size, ToyCost())


def _in_flight(trace, isl):
    """Requests in flight during each step of a vLLM run whose prompts (all `isl` tokens) each
    prefill in one chunk: the decoders plus the prompts prefilled in that step."""
    return [decoders + prefill // isl for _, decoders, prefill, _ in trace]


# -- (a) Poisson arrivals -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_open_loop_gaps_are_exponential(seed):
    """Poisson arrivals at rate R have independent exponential gaps of mean 1/R: coefficient of
    variation 1 and the exponential CDF 1 − e^(−R·t). With 2,000 gaps the sample mean and CV
    are within 10% (over 4 standard errors), and the Kolmogorov-Smirnov distance to that CDF is
    below 1.63/√n (the 1% critical value); even spacing has CV 0 and distance 0.63."""
    rate, n = 4.0, 2001
    times = [r.arrival for r in make_arrivals(concurrency=None, request_rate=rate, isl=8, osl=8,
                                              num_requests=n, lengths=None,
                                              seed=seed).requests]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    mean = sum(gaps) / len(gaps)
    cv = math.sqrt(sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1)) / mean
    assert mean * rate == pytest.approx(1, abs=0.1)
    assert cv == pytest.approx(1, abs=0.1)
    ks = max(max(abs((i + 1) / len(gaps) - cdf), abs(i / len(gaps) - cdf))
             for i, cdf in enumerate(1 - math.exp(-rate * g) for g in gaps))
    assert ks < 1.63 / math.sqrt(len(gaps))


# -- (b) a closed loop of C clients --------------------------------------------------------------

def test_closed_loop_keeps_exactly_c_requests_in_flight():
    """A closed loop of C clients (vllm bench serve --max-concurrency C) never has more than C
    requests in flight, and has exactly C until the last request is sent: each client sends
    its next request when its previous one ends. After the last send the run ends within the
    longest request's O steps, so every earlier step has C in flight."""
    c, isl = 5, 32
    reqs = [RequestSpec(isl, 4 + (7 * i) % 13) for i in range(60)]  # desynchronised clients
    out = _simulate("vllm", reqs, concurrency=c)
    counts = _in_flight(out.trace, isl)
    assert len(out.done) == 60 and max(counts) == c
    longest = max(r.osl for r in reqs)
    assert counts[:-longest] == [c] * (len(counts) - longest)


def test_served_closed_loop_never_exceeds_c():
    """The same through run_serve (the steady-state run, clients' first sends spread over one
    request lifetime): at most C in flight, and C in every step of the run's middle half."""
    c, isl = 8, 128
    report = run_serve(MODEL, gpu=GPU, concurrency=c, num_requests=64, isl=isl, osl=32)
    counts = _in_flight(report.outcome.trace, isl)
    assert max(counts) == c
    middle = counts[len(counts) // 4: 3 * len(counts) // 4]
    assert middle == [c] * len(middle)


# -- (c) vLLM's max_num_seqs ---------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_running_requests_never_exceed_max_num_seqs(engine):
    """vLLM admits a waiting request only while len(running) < max_num_seqs
    (vllm/v1/core/sched/scheduler.py: `if len(self.running) == self.max_num_running_reqs:
    break`); SGLang's and TensorRT-LLM's batch caps work alike. 40 requests sent at once with a
    cap of 4: never more than 4 decode in one step, and 4 do once the first wave prefilled."""
    out = _simulate(engine, [RequestSpec(32, 8, 0.0)] * 40, max_num_seqs=4)
    decoders = [row[1] for row in out.trace]
    assert len(out.done) == 40 and max(decoders) == 4
    if engine == "vllm":  # decoders and prefills share vLLM's steps
        assert max(_in_flight(out.trace, 32)) == 4


def test_served_max_num_seqs_caps_the_batch():
    """run_serve with --max-num-seqs 4 and every request queued at once: 4 decode at most."""
    report = run_serve(MODEL, gpu=GPU, request_rate=float("inf"), num_requests=40, isl=64,
                       osl=16, max_num_seqs=4)
    assert max(row[1] for row in report.outcome.trace) == 4
    assert max(_in_flight(report.outcome.trace, 64)) == 4


# -- (d) ITL over tokens -------------------------------------------------------------------------

def test_itl_percentiles_are_over_tokens_not_steps():
    """ITL is the gap before each output token after the first (vllm bench serve collects one
    sample per token). Hand case: a 10 ms step in which 1 sequence made a token, then a 20 ms
    step in which 99 did: 100 samples, 99 of them 20 ms, so the median, p90 and p99 are 20 ms
    and the mean (0.010 + 99 · 0.020) / 100 = 19.9 ms. Over the two steps they would be 15 ms,
    19 ms, 19.9 ms and 15 ms."""
    itl = ((0.010, 1), (0.020, 99))
    want = {"mean": 0.0199, "median": 0.020, "p90": 0.020, "p99": 0.020}
    assert itl_summary(itl) == pytest.approx(want)
    done = (Done(8, 3, 0.1, 0.13, 0.05, 0.07, 0),)
    out = Outcome(done, itl, (), 0.13, 0.07, 3, 0, 1, 10)
    assert metrics(out, 1)["itl_s"] == pytest.approx(want)


# -- (e) vLLM's KV pool and gpu_memory_utilization -----------------------------------------------

LLAMA_8B_PARAMS = 8_030_261_248  # Llama-3.1-8B's published parameter count (safetensors)
KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # L · K · H · (K and V) · 2 bytes = 131,072


def _hand_kv_tokens(mem_bytes, u, facts):
    """vLLM's pool (vllm/v1/worker/gpu_worker.py determine_available_memory): memory × u −
    weights (2 bytes a parameter) − the profiling forward's peak activations (the widest
    per-token tensor, gate/up of 3·F = 43,008 values in bf16, at max_num_batched_tokens, plus
    fp32 logits and probabilities of max_num_seqs rows of V = 128,256), in whole blocks."""
    activations = facts.max_num_batched_tokens * 3 * 14336 * 2 + \
        facts.max_num_seqs * 128256 * 4 * 2
    pool = mem_bytes * u - 2 * LLAMA_8B_PARAMS - activations
    block = KV_BYTES_PER_TOKEN * facts.block_size
    return int(pool // block) * facts.block_size


def test_kv_tokens_follow_the_memory_fraction_by_hand():
    """At the preset's gpu_memory_utilization (whatever it is) and at 0.5, the KV tokens are the
    hand formula's; between the two they differ by memory · Δu / 131,072 bytes a token, within
    one block, whatever the weights and activations."""
    from perfmodel.hardware.gpu import load_gpu

    mem = load_gpu(GPU).mem_bytes
    preset = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, osl=2)
    half = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, osl=2,
                     gpu_memory_utilization=0.5)
    u = preset.facts.memory_fraction
    assert half.facts.memory_fraction == 0.5 and u != 0.5
    assert preset.kv.bytes_per_token == KV_BYTES_PER_TOKEN
    assert preset.kv.tokens == _hand_kv_tokens(mem, u, preset.facts)
    assert half.kv.tokens == _hand_kv_tokens(mem, 0.5, half.facts)
    assert preset.kv.tokens - half.kv.tokens == pytest.approx(
        mem * (u - 0.5) / KV_BYTES_PER_TOKEN, abs=preset.facts.block_size)


def test_kv_tokens_against_vllm_0_26_on_an_h200():
    """vLLM 0.26.0 on one H200 (143,771 MiB), gpu_memory_utilization 0.92 (its default there),
    Llama-3.1-8B bf16 with dummy weights and default settings, logged 919,824 KV-cache tokens
    (../shared/engines/README.md, "What was seen"). The model leaves out non-torch memory
    (CUDA-graph pools, cuBLAS and NCCL workspaces: a few hundred MB), which only shrinks the
    real pool, so it may be above the log by at most 1%, never below."""
    from perfmodel.cost.precision import preset
    from perfmodel.hardware.gpu import parse_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config
    from perfmodel.serve.kv import kv_plan

    mem = 143771 * 1024 ** 2
    h200 = parse_gpu({**H100_SHEET, "name": "h200-vllm-log", "mem_bytes": float(mem)})
    spec = model_spec(load_model_config(MODEL).config)
    facts = engine_facts("vllm", mem).with_knobs(memory_fraction=0.92)
    tokens = kv_plan(spec, preset("bf16"), h200, facts).tokens
    assert 919_824 <= tokens <= 919_824 * 1.01, tokens


# -- (f) the deployment's throughput over its schedulers -----------------------------------------

@pytest.mark.parametrize("pp, c", [(2, 3), (2, 5)])
def test_pipeline_throughput_obeys_littles_law(pp, c):
    """Little's law for a closed loop of C clients with no think time: requests/s = C / mean
    E2E. With PP2 and an odd C the simulated scheduler has ⌈C/2⌉ clients and the deployment
    C, so scaling by the request share (2) instead of the clients (C/⌈C/2⌉) misses by 33% or
    20%. Warm-up and drain cost a few percent over 120 requests: 5% tolerance."""
    report = run_serve(MODEL, gpu=GPU, pp=pp, concurrency=c, num_requests=120, isl=128, osl=64)
    m = report.metrics
    assert m["throughput"]["requests_s"] == pytest.approx(c / m["e2e_s"]["mean"], rel=0.05)
    assert m["throughput"]["output_tok_s"] == pytest.approx(
        64 * m["throughput"]["requests_s"], rel=1e-9)
