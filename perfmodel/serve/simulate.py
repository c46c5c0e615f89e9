"""The discrete-event loop: arrivals → the engine's policy picks a step → step cost → advance.

Two clocks run over the same schedule: the estimate (what the engine takes, host overhead and
CUDA-graph padding included) decides the schedule; the limit clock adds the roofline time of the
very same steps, so the limit is a perfect engine at that schedule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from perfmodel.errors import WorkloadError
from perfmodel.serve.engines import EngineFacts
from perfmodel.serve.prefix_cache import PrefixCache, PrefixStats
from perfmodel.serve.requests import Arrivals
from perfmodel.serve.scheduler import POLICIES
from perfmodel.serve.state import Seq, State
from perfmodel.serve.step_cost import StepCost

PAGE = 16  # finest KV granularity tracked: at most 15 tokens a sequence counted early


@dataclass(frozen=True)
class Done:
    """One finished request: times on the estimate clock and on the limit clock (seconds)."""

    isl: int
    osl: int
    ttft: float
    e2e: float
    ttft_lim: float
    e2e_lim: float
    preemptions: int
    recomputed: int = 0  # completed recompute prefills, each of which made one output token
    index: int = 0  # the request's place in the run
    cached: int = 0  # prompt tokens its first token's prefill found in the prefix cache

    @property
    def tpot(self) -> float | None:
        return (self.e2e - self.ttft) / (self.osl - 1) if self.osl > 1 else None

    @property
    def tpot_lim(self) -> float | None:
        return (self.e2e_lim - self.ttft_lim) / (self.osl - 1) if self.osl > 1 else None


_DONE_FIELDS = tuple(Done.__dataclass_fields__)


def _done(*values) -> Done:
    """Done(*values), field for field, without the frozen dataclass's per-field
    object.__setattr__ (one per finished request: a million-request run makes a million)."""
    done = object.__new__(Done)
    object.__setattr__(done, "__dict__", dict(zip(_DONE_FIELDS, values)))
    return done


@dataclass(frozen=True)
class Outcome:
    """Everything a run produced: requests, per-step ITL samples, the trace, KV use."""

    done: tuple[Done, ...]
    itl: tuple[tuple[float, int], ...]  # (step seconds, decoders that made a token in it)
    trace: tuple[tuple[float, int, int, int], ...]  # (end time, decoders, prefill tokens, blocks)
    duration: float
    duration_lim: float
    steps: int
    preemptions: int
    peak_blocks: int
    total_blocks: int
    prefix: PrefixStats | None = None  # what prefix caching did (None: no shared prefixes)


class _Run:
    def __init__(self, arrivals: Arrivals, facts: EngineFacts, total_blocks: int,
                 block_size: int, cost: StepCost, ramp_s: float = 0.0,
                 client_delay_s: float = 0.0, prefix_caching: bool = True):
        self.specs, self.facts, self.cost = arrivals.requests, facts, cost
        if block_size < PAGE:  # SGLang's 1-token pages, tracked in PAGE-token pages
            total_blocks, block_size = total_blocks * block_size // PAGE, PAGE
        self.state = State(total_blocks, block_size)
        if prefix_caching and any(spec.prefix_len for spec in self.specs):
            self.state.cache = PrefixCache(self.state, facts.policy, facts.block_size)
        self.policy = POLICIES[facts.policy]
        self.grows = facts.policy != "trtllm"  # TRT-LLM reserved prompt + output up front
        self.t = self.t_lim = 0.0
        self.next = 0
        self.closed = arrivals.concurrency is not None
        self.delay = client_delay_s
        self.sends: deque[float] = deque()  # clients' next requests on their way (client_delay_s)
        self.done: list[Done] = []
        self.itl: list[tuple[float, int]] = []
        self.trace: list[tuple[float, int, int, int]] = []
        self.ratio = [0.7]
        first = min(arrivals.concurrency, len(self.specs)) if self.closed else 0
        self.ramp = [k * ramp_s / first for k in range(first)]  # clients' first sends
        self.ramp.reverse()
        self._ramp_arrivals()

    def _ramp_arrivals(self) -> None:
        while self.ramp and self.ramp[-1] <= self.t:
            self.ramp.pop()
            self._arrive()

    def _arrive(self, at: float | None = None) -> None:
        """The next request joins the waiting queue; `at` (≤ now): when it reached the engine,
        which its TTFT counts from."""
        spec = self.specs[self.next]
        too_big = self.state.blocks_for(spec.isl + spec.osl) > self.state.total_blocks
        if too_big:
            raise WorkloadError(f"one request of {spec.isl} + {spec.osl} tokens needs more KV "
                                f"cache than the engine has ({self.state.total_blocks} blocks of "
                                f"{self.state.block_size}); shorten it or add memory")
        late = 0.0 if at is None else self.t - at
        self.state.waiting.append(Seq(self.next, spec, self.t - late, self.t_lim - late))
        self.next += 1

    def _open_arrivals(self) -> None:
        while self.next < len(self.specs) and self.specs[self.next].arrival <= self.t:
            self._arrive()

    def step(self) -> bool:
        """Run one engine step (or wait for the next arrival); False when all are done."""
        state = self.state
        if self.closed:
            if self.ramp and self.ramp[-1] <= self.t:
                self._ramp_arrivals()
            while self.sends and self.sends[0] <= self.t:
                self._arrive(self.sends.popleft())
        elif self.next < len(self.specs) and self.specs[self.next].arrival <= self.t:
            self._open_arrivals()
        n_dec, chunks = self.policy(state, self.facts, self.ratio)
        if not n_dec and not chunks:
            if self.ramp or self.sends or not self.closed and self.next < len(self.specs):
                due = min(self.ramp[-1:] + list(self.sends)[:1]) if self.closed \
                    else self.specs[self.next].arrival
                gap = due - self.t
                self.t, self.t_lim = self.t + gap, self.t_lim + gap
                return True
            if self.state.running or self.state.waiting:
                raise WorkloadError("the simulated engine stalled: a request cannot be "
                                    "scheduled (raise --max-num-batched-tokens or memory)")
            return False
        if chunks:
            finishing = sum(1 for s, t in chunks if t == s.remaining)
            est, lim = self.cost.step(n_dec, state.context_sum() if n_dec else 0,
                                      [(s.done, t) for s, t in chunks], n_dec + finishing)
        else:
            est, lim = self.cost.step(n_dec, state.a_sum + n_dec * state.g, (), n_dec)
        self.t, self.t_lim = self.t + est, self.t_lim + lim
        if n_dec:
            self.itl.append((est, n_dec))
            state.g += 1
        heap = state.finish_heap
        if heap and heap[0][0] <= state.g:  # (due_finish's own test, inline)
            for seq in state.due_finish():
                self._finish(seq)
        prefill = 0
        cache = state.cache
        for seq, take in chunks:
            seq.done += take
            prefill += take
            if cache is not None and seq.held:
                cache.computed(seq, seq.done)
            if seq.remaining == 0:
                self._prefilled(seq)
        self.trace.append((self.t, n_dec, prefill, state.total_blocks - state.free))
        return True

    def _prefilled(self, seq: Seq) -> None:
        self.state.prefilling.remove(seq)
        if seq.first is None:
            seq.first, seq.first_lim = self.t, self.t_lim
        else:
            seq.recomputed += 1
        if seq.base + 1 >= seq.osl:
            self._finish(seq)
        else:
            self.state.start_decode(seq, self.grows)

    def _finish(self, seq: Seq) -> None:
        self.state.stop(seq)
        self.done.append(_done(seq.isl, seq.osl, seq.first - seq.arrival, self.t - seq.arrival,
                              seq.first_lim - seq.arrival_lim, self.t_lim - seq.arrival_lim,
                              seq.preemptions, seq.recomputed, seq.i, seq.reused))
        if self.closed and self.next + len(self.ramp) + len(self.sends) < len(self.specs):
            if self.delay:  # its next request reaches the engine a round trip later
                self.sends.append(self.t + self.delay)
            else:
                self._arrive()  # the client sends its next request (ramp sends stay reserved)


def simulate(arrivals: Arrivals, facts: EngineFacts, total_blocks: int, block_size: int,
             cost: StepCost, on_progress: Callable[[int, int], None] | None = None,
             ramp_s: float = 0.0, client_delay_s: float = 0.0,
             prefix_caching: bool = True) -> Outcome:
    """Run every request of `arrivals` through the engine; see the module docstring. Closed
    loop: client k of C sends its first request at k·ramp_s/C (0: all at once), and each next
    one reaches the engine client_delay_s after its previous one ends there (the round trip
    outside the engine: the last token out to the client, the next request in).
    prefix_caching: requests sharing a prefix reuse its cached KV (serve/prefix_cache.py)."""
    run = _Run(arrivals, facts, total_blocks, block_size, cost, ramp_s, client_delay_s,
               prefix_caching)
    steps = 0
    while run.step():
        steps += 1
        if on_progress is not None and steps % 256 == 0:
            on_progress(len(run.done), len(arrivals.requests))
    state = run.state
    return Outcome(tuple(run.done), tuple(run.itl), tuple(run.trace), run.t, run.t_lim, steps,
                   state.preemptions, state.peak_blocks, state.total_blocks,
                   state.cache.stats() if state.cache is not None else None)
