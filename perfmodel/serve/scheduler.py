"""One function per engine policy: given the state, choose the next step's decode set and chunks.

Each returns (decoders run, [(seq, new prefill tokens)]); the simulator (simulate.py) times the
step and advances the state. Semantics follow each engine's scheduler (engines.py cites them):

vLLM V1 (vllm/v1/core/sched/scheduler.py): one token budget, max_num_batched_tokens, per step.
  Running requests first: every decoder takes one token (a decoder that needs a new block and
  finds none preempts the last-admitted running request, which is requeued first and recomputed),
  then running partial prefills take chunks; then waiting requests are admitted in order while
  budget, max_num_seqs and free blocks allow, the last one chunked to the budget.
SGLang (python/sglang/srt/managers/scheduler.py): a prefill batch runs whenever one can be
  formed, else a decode batch of every running request; prefill batches take chunked_prefill_size
  tokens, one request chunked at a time. A request is admitted while its prompt + min(O, 4096)
  fits in the free tokens less the running requests' remaining output × new_token_ratio (0.7,
  decaying by 0.7·0.86/600 each decode step to 0.098). A full cache in decode retracts the
  newest request (recompute).
TensorRT-LLM (in-flight batching, GUARANTEED_NO_EVICT): a request is admitted only when blocks
  for its whole prompt + output are free (never evicted), up to max_batch_size; each step runs
  every generating request plus whole context phases up to max_num_tokens (no chunking).
"""

from __future__ import annotations

from perfmodel.serve.engines import EngineFacts
from perfmodel.serve.state import CLIP_NEW_TOKENS, Seq, State

Plan = tuple[int, list[tuple[Seq, int]]]


def _grow_decoders(state: State) -> None:
    """Give each decoder that needs one the next block, preempting from the tail when full."""
    due = state.due_growth(ordered=False)
    if not due:
        return
    if len(due) <= state.free:  # each takes one block and every one gets it: no preemption,
        state.grow_each(due)    # so the order does not matter
        return
    size = state.block_size  # (due counter, index) order, the counter as _push_grow keyed it
    due.sort(key=lambda seq: (seq.blocks * size - seq.isl - seq.base + seq.g0, seq.i))
    for seq in due:
        while seq.decoding and not state.alloc_to(seq, (seq.blocks + 1) * state.block_size):
            victim = state.running[-1]
            state.preempt(victim)
            if victim is seq:
                break
        if seq.decoding:
            state.grew(seq)


def _fit_chunk(state: State, seq: Seq, tokens: int) -> bool:
    """Blocks for seq's next `tokens` prefill tokens, preempting the tail (never seq) if needed."""
    while not state.alloc_to(seq, seq.done + tokens):
        victim = state.running[-1]
        if victim is seq:
            return False
        state.preempt(victim)
    return True


def _lookup(state: State, seq: Seq) -> None:
    """A waiting request's prefix-cache hit, if the engine caches prefixes and it has one: its
    prefill then starts at the cached tokens (serve/prefix_cache.py)."""
    if state.cache is not None and seq.prefix is not None:
        state.cache.lookup(seq)


def vllm_step(state: State, facts: EngineFacts, ratio: list[float]) -> Plan:
    if state.grow_keys and state.grow_keys[0] <= state.g:  # (due_growth's own test, inline)
        _grow_decoders(state)
    budget = facts.max_num_batched_tokens - state.n_decode * state.decode_tokens
    chunks: list[tuple[Seq, int]] = []
    for seq in list(state.prefilling) if state.prefilling else ():
        if budget <= 0:
            break
        take = min(seq.remaining, budget)
        if (take < seq.remaining and not facts.chunked_prefill) or seq not in state.prefilling:
            continue
        if _fit_chunk(state, seq, take):
            chunks.append((seq, take))
            budget -= take
    while state.waiting and budget > 0 and len(state.running) < facts.max_num_seqs:
        seq = state.waiting[0]
        _lookup(state, seq)
        take = min(seq.remaining, budget)
        if take < seq.remaining and not facts.chunked_prefill:
            break
        if not state.alloc_to(seq, seq.done + take):
            break
        _admit(state, seq)
        chunks.append((seq, take))
        budget -= take
    if not chunks:
        return state.n_decode, chunks
    return state.n_decode, [(s, t) for s, t in chunks if s in state.prefilling]


def _admit(state: State, seq: Seq) -> None:
    state.waiting.popleft()
    state.running.append(seq)
    state.prefilling.append(seq)


def sglang_step(state: State, facts: EngineFacts, ratio: list[float]) -> Plan:
    chunks = _sglang_prefill(state, facts, ratio[0])
    if chunks:
        return (state.n_decode if facts.mixed else 0), chunks
    _grow_decoders(state)
    if state.n_decode:
        ratio[0] = max(ratio[0] - 0.7 * (1 - 0.14) / 600, 0.7 * 0.14)
    return state.n_decode, []


def _sglang_prefill(state: State, facts: EngineFacts, new_token_ratio: float) -> list:
    budget = facts.max_num_batched_tokens
    chunks = []
    for seq in list(state.prefilling):  # the request being chunked goes first
        take = min(seq.remaining, budget) if facts.chunked_prefill else seq.remaining
        if take and _fit_chunk(state, seq, take):
            chunks.append((seq, take))
            budget -= take
    reserved = state.remaining_output() * new_token_ratio
    room = state.free * state.block_size - reserved
    while state.waiting and budget > 0 and len(state.running) < facts.max_num_seqs:
        seq = state.waiting[0]
        _lookup(state, seq)
        total = seq.remaining + min(seq.osl - seq.base, CLIP_NEW_TOKENS)
        if total >= room:
            break
        take = min(seq.remaining, budget)
        if take < seq.remaining and not facts.chunked_prefill:
            if chunks:
                break
            take = seq.remaining
        if not state.alloc_to(seq, seq.done + take):
            break
        _admit(state, seq)
        chunks.append((seq, take))
        budget -= take
        room -= total
    return chunks


def trtllm_step(state: State, facts: EngineFacts, ratio: list[float]) -> Plan:
    budget = facts.max_num_batched_tokens - state.n_decode * state.decode_tokens
    chunks = [(seq, seq.remaining) for seq in state.prefilling]  # none left over: no chunking
    budget -= sum(t for _, t in chunks)
    while state.waiting and len(state.running) < facts.max_num_seqs:
        seq = state.waiting[0]
        _lookup(state, seq)
        if seq.remaining > budget and (chunks or state.n_decode):
            break
        if not state.alloc_to(seq, seq.isl + seq.osl):  # GUARANTEED_NO_EVICT reservation
            break
        _admit(state, seq)
        chunks.append((seq, seq.remaining))
        budget -= seq.remaining
    return state.n_decode, chunks


POLICIES = {"vllm": vllm_step, "sglang": sglang_step, "trtllm": trtllm_step}
