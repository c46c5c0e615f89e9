"""The one-instance API (serve/simulate.py Instance) a multi-instance driver steps, against
hand-worked cases with a toy step cost (a + b·tokens seconds, limit half of it)."""

from __future__ import annotations

import math

import pytest

from perfmodel.errors import WorkloadError
from perfmodel.serve.engines import engine_facts
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import Instance, simulate

A, B = 1e-3, 1e-5
H100 = 80 * 1024 ** 3


class ToyCost:
    def __init__(self):
        self.calls = []

    def step(self, decode_seqs, context_sum, chunks, samples):
        self.calls.append((decode_seqs, context_sum, tuple(chunks), samples))
        t = A + B * (decode_seqs + sum(n for _, n in chunks))
        return t, t / 2


def _instance(engine="vllm", blocks=1000, cost=None, **knobs):
    facts = engine_facts(engine, H100).with_knobs(**knobs)
    return Instance(facts, blocks, facts.block_size, cost or ToyCost())


def test_an_idle_instance_has_no_next_step_and_steps_nothing():
    inst = _instance()
    assert inst.next_start() == math.inf
    assert not inst.run_step()
    assert inst.load().requests == 0 and inst.collect() == []


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_request_injected_at_t_runs_from_t(engine):
    """Idle until t = 2 s, one request of 100 + 3 tokens: TTFT one prefill step, E2E two more
    decode steps; the Done carries the caller's index; the clock ends at t + E2E."""
    inst = _instance(engine)
    inst.wait_until(2.0)
    inst.inject(RequestSpec(100, 3), 41)
    assert inst.next_start() == 2.0
    assert inst.load().waiting == 1 and inst.queued_prefill_tokens() == 100
    steps = 0
    while inst.next_start() < math.inf:
        assert inst.run_step()
        steps += 1
    (done,) = inst.collect()
    assert steps == 3 and done.index == 41
    assert done.ttft == pytest.approx(A + 100 * B)
    assert done.e2e == pytest.approx(A + 100 * B + 2 * (A + B))
    assert inst.t == pytest.approx(2.0 + done.e2e)
    assert inst.collect() == []  # collected once


def test_load_counts_waiting_running_and_blocks():
    """vLLM, 16-token blocks, token budget 128: of three 100-token prompts the first step
    admits the first whole and 28 tokens of the second (7 + 2 blocks),
    the third waits."""
    inst = _instance(max_num_batched_tokens=128)
    for i in range(3):
        inst.inject(RequestSpec(100, 4), i)
    assert inst.load().waiting == 3
    inst.run_step()
    load = inst.load()
    assert (load.waiting, load.running) == (1, 2)
    assert load.used_blocks == math.ceil(100 / 16) + math.ceil(28 / 16)
    assert load.used_blocks + load.free_blocks == 1000
    assert inst.queued_prefill_tokens() == 100 + 72


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_computed_prompt_tokens_leave_one_token_to_prefill(engine):
    """A request whose KV arrives with it (computed = I − 1, a disaggregated decode side):
    its first step prefills one token at context I − 1, and it holds the blocks of its whole
    prompt."""
    cost = ToyCost()
    inst = _instance(engine, cost=cost)
    inst.inject(RequestSpec(160, 2), 0, computed=159)
    inst.run_step()
    assert cost.calls[0][2] == ((159, 1),)
    assert inst.load().used_blocks >= inst.state.blocks_for(160)
    inst.run_step()
    (done,) = inst.collect()
    assert done.ttft == pytest.approx(A + B)


def test_computed_must_leave_a_token():
    with pytest.raises(WorkloadError, match="at most one less"):
        _instance().inject(RequestSpec(10, 2), 0, computed=10)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_driving_an_instance_by_hand_is_simulate(engine):
    """An open-loop stream injected at each step boundary its arrival has passed (an idle
    instance first waits for it), each TTFT counted from its arrival, is simulate's own run,
    record for record."""
    reqs = tuple(RequestSpec(50 + 37 * (i % 5), 3 + i % 7, 0.004 * i) for i in range(40))
    facts = engine_facts(engine, H100).with_knobs(max_num_batched_tokens=256)
    want = simulate(Arrivals(reqs, None, 250.0), facts, 400, facts.block_size, ToyCost())
    inst = Instance(facts, 400, facts.block_size, ToyCost())
    nxt = 0
    while nxt < len(reqs) or inst.next_start() < math.inf:
        if nxt < len(reqs) and reqs[nxt].arrival <= inst.next_start():
            if inst.next_start() == math.inf and reqs[nxt].arrival > inst.t:
                inst.wait_until(reqs[nxt].arrival)
            inst.inject(reqs[nxt], nxt, reqs[nxt].arrival)
            nxt += 1
        else:
            assert inst.run_step()
    assert tuple(inst.collect()) == want.done
    assert tuple(inst.itl) == want.itl and tuple(inst.trace) == want.trace
    assert inst.steps + inst.waits == want.steps
