"""The discrete-event loop: arrivals → the engine's policy picks a step → step cost → advance.

Two clocks run over the same schedule: the estimate (what the engine takes, host overhead and
CUDA-graph padding included) decides the schedule; the limit clock adds the roofline time of the
very same steps, so the limit is a perfect engine at that schedule.

Instance is one engine instance with a public API (inject, next_start, run_step, load,
collect: its docstring) for drivers of many instances (serve/fleet.py); simulate runs one
instance with its own closed- or open-loop arrivals.
"""

from __future__ import annotations

import gc
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

from perfmodel.errors import WorkloadError
from perfmodel.serve.engines import EngineFacts
from perfmodel.serve.fast_forward import SegmentMemo, decode_stretch
from perfmodel.serve.prefix_cache import PrefixCache, PrefixStats
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.scheduler import POLICIES
from perfmodel.serve.state import Seq, State
from perfmodel.serve.step_cost import StepCost

PAGE = 16  # finest KV granularity tracked: at most 15 tokens a sequence counted early
FAST_FORWARD = True  # simulate runs decode-only stretches in one go (serve/fast_forward.py)


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


@dataclass(frozen=True)
class Load:
    """An instance's load as a router sees it: requests waiting and running (prefilling or
    decoding), and its KV blocks in use and free."""

    waiting: int
    running: int
    used_blocks: int
    free_blocks: int

    @property
    def requests(self) -> int:
        return self.waiting + self.running


class Instance:
    """One engine instance (one scheduler, its KV pool, its two clocks): the public API a driver
    of many instances steps (serve/fleet.py; a disaggregated deployment's pools likewise).

        inst = Instance(facts, total_blocks, block_size, cost)
        inst.inject(spec, index, at)  # a request joins the waiting queue; TTFT counts from at
        inst.next_start()           # when its next step starts: inst.t, or inf when idle
        inst.wait_until(t)          # an idle instance's clocks move on to t
        inst.run_step()             # one step if the policy picks one (False: none to run)
        inst.load()                 # Load: waiting, running, KV blocks used and free
        inst.collect()              # the Done records finished since the last collect()

    A driver steps the instance whose next_start() is earliest, and hands it a request that
    arrived at a ≤ next_start() before that step (an idle one first waits until a). A request
    joins with its arrival time = the instance's clock (the step boundary it is admitted at),
    as one instance's own loop (simulate) has it. inject's `computed`: prompt tokens whose KV is
    already in this instance's cache when the request arrives (a disaggregated decode instance
    receives the prefill instance's KV: vLLM's KV connector then recomputes only the last
    prompt token, vllm/v1/core/sched/scheduler.py _update_waiting_for_remote_kv, so
    computed = I − 1); the request still joins the waiting queue and is admitted as any other.
    Done.index is the caller's index; the caller's indices must rise in arrival order (they
    break ties in the scheduler's heaps as the run's own indices do).
    """

    def __init__(self, facts: EngineFacts, total_blocks: int, block_size: int, cost: StepCost,
                 prefix_caching: bool = True):
        self.facts, self.cost = facts, cost
        self.prefix_caching = prefix_caching  # requests sharing a prefix reuse its cached KV
        if block_size < PAGE:  # SGLang's 1-token pages, tracked in PAGE-token pages
            total_blocks, block_size = total_blocks * block_size // PAGE, PAGE
        self.state = State(total_blocks, block_size)
        # tokens a decoder runs and emits per step: 1 and 1, or 1 + k and a when speculating
        self.state.decode_tokens = getattr(cost, "queries_per_decoder", 1)
        self.per_step = getattr(cost, "tokens_per_step", 1)
        self.policy = POLICIES[facts.policy]
        self.grows = facts.policy != "trtllm"  # TRT-LLM reserved prompt + output up front
        self.t = self.t_lim = 0.0
        self.done: list[Done] = []
        self.itl: list[tuple[float, int]] = []
        self.trace: list[tuple[float, int, int, int]] = []
        self.keep_trace = True  # False: no trace rows (nothing asked for them; a faster run)
        self.ratio = [0.7]
        self.steps = 0
        self.waits = 0  # idle gaps waited (simulate counts them among its steps)
        self.busy_s = 0.0  # estimate-clock seconds spent in steps
        self._seen = 0

    def inject(self, spec: RequestSpec, index: int, at: float | None = None,
               computed: int = 0) -> None:
        """The request joins the waiting queue; `at` (≤ now): when it reached the engine,
        which its TTFT counts from (None: now)."""
        too_big = self.state.blocks_for(spec.isl + spec.osl) > self.state.total_blocks
        if too_big:
            raise WorkloadError(f"one request of {spec.isl} + {spec.osl} tokens needs more KV "
                                f"cache than the engine has ({self.state.total_blocks} blocks of "
                                f"{self.state.block_size}); shorten it or add memory")
        late = 0.0 if at is None else self.t - at
        seq = Seq(index, spec, self.t - late, self.t_lim - late)
        if spec.prefix_len and self.prefix_caching and self.state.cache is None:
            self.state.cache = PrefixCache(self.state, self.facts.policy, self.facts.block_size)
        if computed:
            if not 0 <= computed < spec.isl:
                raise WorkloadError(f"{computed} computed prompt tokens of a {spec.isl}-token "
                                    "prompt: at most one less than the prompt")
            seq.done = computed
        self.state.waiting.append(seq)

    def wait_until(self, due: float) -> None:
        """Both clocks move on by the idle gap to `due`."""
        gap = due - self.t
        self.t, self.t_lim = self.t + gap, self.t_lim + gap
        self.waits += 1

    def next_start(self) -> float:
        state = self.state
        return self.t if state.waiting or state.running else math.inf

    def load(self) -> Load:
        state = self.state
        return Load(len(state.waiting), len(state.running), state.total_blocks - state.free,
                    state.free)

    def queued_prefill_tokens(self) -> int:
        """Prompt tokens still to prefill: the waiting requests' and the partial prefills'."""
        state = self.state
        return sum(s.remaining for s in state.waiting) + sum(s.remaining
                                                             for s in state.prefilling)

    def collect(self) -> list[Done]:
        new = self.done[self._seen:]
        self._seen = len(self.done)
        return new

    def run_step(self) -> bool:
        """Run one engine step if the policy picks one; False (nothing changed) if none."""
        state = self.state
        n_dec, chunks = self.policy(state, self.facts, self.ratio)
        if not n_dec and not chunks:
            return False
        if chunks:
            finishing = sum(1 for s, t in chunks if t == s.remaining)
            est, lim = self.cost.step(n_dec, state.context_sum() if n_dec else 0,
                                      [(s.done, t) for s, t in chunks], n_dec + finishing)
        else:
            est, lim = self.cost.step(n_dec, state.a_sum + n_dec * state.g, (), n_dec)
        self.t, self.t_lim = self.t + est, self.t_lim + lim
        self.steps += 1
        self.busy_s += est
        if n_dec:
            self.itl.append((est, n_dec))
            state.g += self.per_step
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
        if self.keep_trace:
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


class _Run(Instance):
    """One instance and its own arrivals (closed or open loop): simulate's loop."""

    def __init__(self, arrivals: Arrivals, facts: EngineFacts, total_blocks: int,
                 block_size: int, cost: StepCost, ramp_s: float = 0.0,
                 client_delay_s: float = 0.0, prefix_caching: bool = True):
        super().__init__(facts, total_blocks, block_size, cost, prefix_caching)
        self.specs = arrivals.requests
        self.next = 0
        self.closed = arrivals.concurrency is not None
        self.delay = client_delay_s
        self.sends: deque[float] = deque()  # clients' next requests on their way (client_delay_s)
        first = min(arrivals.concurrency, len(self.specs)) if self.closed else 0
        self.ramp = [k * ramp_s / first for k in range(first)]  # clients' first sends
        self.ramp.reverse()
        self._ramp_arrivals()
        # decode-only stretches in one go where a step makes one token a decoder (an integer
        # counter: a speculating cost's a = 1.0 keeps the step-by-step loop)
        self.fast = (FAST_FORWARD and type(self.per_step) is int and self.per_step == 1
                     and self.state.decode_tokens == 1)
        self.segments = SegmentMemo()

    def _ramp_arrivals(self) -> None:
        while self.ramp and self.ramp[-1] <= self.t:
            self._arrive(self.ramp.pop())

    def _arrive(self, at: float | None = None) -> None:
        """The next request joins the waiting queue; `at` (≤ now): when it reached the engine,
        which its TTFT counts from."""
        self.inject(self.specs[self.next], self.next, at)
        self.next += 1

    def _open_arrivals(self) -> None:
        while self.next < len(self.specs) and self.specs[self.next].arrival <= self.t:
            self._arrive(self.specs[self.next].arrival)  # TTFT counts from the arrival itself

    def step(self) -> int:
        """Run one engine step, or a decode-only stretch of them, or wait for the next arrival:
        the steps taken (a wait counts one); 0 when all are done."""
        if self.closed:
            if self.ramp and self.ramp[-1] <= self.t:
                self._ramp_arrivals()
            while self.sends and self.sends[0] <= self.t:
                self._arrive(self.sends.popleft())
        elif self.next < len(self.specs) and self.specs[self.next].arrival <= self.t:
            self._open_arrivals()
        if self.fast:
            run = decode_stretch(self, self._horizon())
            if run:
                return run
        if self.run_step():
            return 1
        if self.ramp or self.sends or not self.closed and self.next < len(self.specs):
            self.wait_until(min(self.ramp[-1:] + list(self.sends)[:1]) if self.closed
                            else self.specs[self.next].arrival)
            return 1
        if self.state.running or self.state.waiting:
            raise WorkloadError(STALLED)
        return 0

    def _horizon(self) -> float:
        """When the next request reaches the engine (inf: none is on its way)."""
        if self.closed:
            return min(self.ramp[-1] if self.ramp else math.inf,
                       self.sends[0] if self.sends else math.inf)
        return self.specs[self.next].arrival if self.next < len(self.specs) else math.inf

    def _finish(self, seq: Seq) -> None:
        super()._finish(seq)
        if self.closed and self.next + len(self.ramp) + len(self.sends) < len(self.specs):
            if self.delay:  # its next request reaches the engine a round trip later
                self.sends.append(self.t + self.delay)
            else:  # the client sends its next request, after the first sends already due
                self._ramp_arrivals()
                self._arrive()


STALLED = ("the simulated engine stalled: a request cannot be scheduled (raise "
           "--max-num-batched-tokens or memory)")


def simulate(arrivals: Arrivals, facts: EngineFacts, total_blocks: int, block_size: int,
             cost: StepCost, on_progress: Callable[[int, int], None] | None = None,
             ramp_s: float = 0.0, client_delay_s: float = 0.0,
             prefix_caching: bool = True, keep_trace: bool = True) -> Outcome:
    """Run every request of `arrivals` through the engine; see the module docstring. Closed
    loop: client k of C sends its first request at k·ramp_s/C (0: all at once), and each next
    one reaches the engine client_delay_s after its previous one ends there (the round trip
    outside the engine: the last token out to the client, the next request in).
    prefix_caching: requests sharing a prefix reuse its cached KV (serve/prefix_cache.py);
    keep_trace False: the Outcome's trace is empty (every other figure the same)."""
    run = _Run(arrivals, facts, total_blocks, block_size, cost, ramp_s, client_delay_s,
               prefix_caching)
    run.keep_trace = keep_trace
    steps = 0
    collecting = gc.isenabled()  # the run makes millions of tuples of numbers, no cycles:
    gc.disable()                 # the cycle collector would only walk them again and again
    try:
        while taken := run.step():
            steps += taken
            if on_progress is not None and steps % 256 < taken:
                on_progress(len(run.done), len(arrivals.requests))
    finally:
        if collecting:
            gc.enable()
    state = run.state
    return Outcome(tuple(run.done), tuple(run.itl), tuple(run.trace), run.t, run.t_lim, steps,
                   state.preemptions, state.peak_blocks, state.total_blocks,
                   state.cache.stats() if state.cache is not None else None)
