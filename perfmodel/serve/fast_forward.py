"""Decode-only stretches run in one go: the same steps as Instance.run_step, bit for bit.

Between events, an engine's steps only decode: no prefill chunk is left, no waiting request can
be admitted, nobody finishes, needs a block, or (SGLang) reaches the output clip, and no request
arrives. There the n decoders stay the same, so step k reads the context sum c₀ + n·k and its
(estimate, limit) is StepCost.step(n, c₀ + n·k, (), n), the very call run_step makes; the
clocks are those times added one after another (itertools.accumulate and functools.reduce add
in the same order as `t += est`, so the floats are the same), and the ITL and trace records are
the same tuples, made in C. A stretch ends before the step at which a finish, a clip or an
arrival is due; a block-growth event inside it is served in place when every due decoder gets
its block (scheduler._grow_decoders without a preemption), else the stretch ends there too.
Whatever the stretch does not cover goes through run_step (the slow path), so every event is
handled by the very code that handles it there.

The waiting queue may hold requests only while the policy provably admits none for the whole
stretch (the state it tests does not change in it, or changes only towards refusing):
- vLLM: max_num_seqs running, no token budget left, an unchunkable first prompt, or too few free
  blocks for its chunk (growth only takes blocks);
- TensorRT-LLM: max_num_seqs running, a first prompt above the budget, or too few free blocks for
  its whole prompt + output (no growth: blocks are reserved at admission);
- SGLang: max_num_seqs running (its admission room grows as the new-token ratio decays, so any
  other waiting request leaves the step to run_step).
With prefix caching on, a waiting request's blocks depend on the cache: only max_num_seqs or no
budget count as refusing. Speculative decoding (a tokens per step) stays on the slow path.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from functools import reduce
from itertools import accumulate, islice, repeat
from operator import add

from perfmodel.serve.scheduler import _grow_decoders
from perfmodel.serve.state import CLIP_NEW_TOKENS

# SGLang's new-token-ratio decay per decode step and its floor, as scheduler.sglang_step has them
_DECAY, _FLOOR = 0.7 * (1 - 0.14) / 600, 0.7 * 0.14
SHORT = 4  # stretches of fewer steps before a finish are left to run_step (no faster in one go)
_CACHE_FLOATS = 1_500_000  # remembered entries (times, ITL records; ~45 B each) before a fresh start


def _refuses(inst) -> bool | None:
    """Whether the policy admits no waiting request in any step of the stretch (None: SGLang,
    whose room for the first waiting request decode_stretch tests step by step)."""
    state, facts = inst.state, inst.facts
    if not state.waiting or len(state.running) >= facts.max_num_seqs:
        return True
    policy = facts.policy
    if policy == "sglang":
        if facts.max_num_batched_tokens <= 0:
            return True
        return None if state.cache is None else False
    budget = facts.max_num_batched_tokens - state.n_decode
    if policy == "vllm" and budget <= 0:
        return True
    if state.cache is not None:
        return False
    seq = state.waiting[0]
    if policy == "vllm":
        take = min(seq.remaining, budget)
        if take < seq.remaining and not facts.chunked_prefill:
            return True
        return state.blocks_for(seq.done + take) - seq.blocks > state.free
    if policy == "trtllm":
        if seq.remaining > budget:
            return True
        return state.blocks_for(seq.isl + seq.osl) - seq.blocks > state.free
    return False


def _prefills_wait(inst) -> bool:
    """Whether vLLM's partial prefills all take no chunk in any step of the stretch: each is
    an unchunkable remainder, or the last-admitted request (which _fit_chunk never preempts
    for) without the free blocks for its chunk (growth only takes blocks)."""
    state, facts = inst.state, inst.facts
    if facts.policy != "vllm" or state.cache is not None:
        return False
    budget = facts.max_num_batched_tokens - state.n_decode
    if budget <= 0:
        return True
    last = state.running[-1]
    for seq in state.prefilling:
        take = min(seq.remaining, budget)
        if take < seq.remaining and not facts.chunked_prefill:
            continue
        if seq is last and state.blocks_for(seq.done + take) - seq.blocks > state.free:
            continue
        return False
    return True


def _grow_in_place(state) -> bool:
    """Serve the block growth due at the current counter as the policy would, if no decoder can
    be refused its block (entries, stale ones counted, at most the free blocks); False: not
    served, the step is left to run_step."""
    keys, g = state.grow_keys, state.g
    if len(keys) > 1 and keys[1] <= g:
        return False
    if len(state.grow_at[keys[0]]) > state.free:
        return False
    _grow_decoders(state)
    return True


def _times(inst, n: int, c0: int, k: int) -> tuple[list[float], list[float], list[tuple]]:
    """(estimates, limits, ITL records (estimate, n)) of the k decode-only steps of n decoders
    from context sum c0 (at least k: the lists are remembered and grow)."""
    memo = inst.segments
    got = memo.get((n, c0))
    if got is not None and len(got[0]) >= k:
        return got
    ests, lims, itl = got if got is not None else ([], [], [])
    if memo.floats > _CACHE_FLOATS:
        memo.clear()
        memo.floats = 0
    step = inst.cost.step
    start = c0 + n * len(ests)
    for c in range(start, c0 + n * k, n):
        est, lim = step(n, c, (), n)
        ests.append(est)
        lims.append(lim)
        itl.append((est, n))
    memo.floats += 3 * (k - (start - c0) // n)
    memo[(n, c0)] = got = ests, lims, itl
    return got


class SegmentMemo(dict):
    """(decoders, first context sum) → the step times from there, as lists that grow."""

    floats = 0


def _growth_per_step(state, g: int, k: int) -> list[int]:
    """The blocks that the decoders' growth takes at each of the k steps from counter g, when
    every one gets its block (the calendar left as it is)."""
    per_step, end, size, grow_at = [0] * k, g + k, state.block_size, state.grow_at
    for key in state.grow_keys:
        if key < end:
            for _, epoch, seq in grow_at[key]:
                if epoch == seq.epoch and seq.decoding:
                    for at in range(key - g, k, size):
                        per_step[at] += 1
    return per_step


def _sglang_admits(state, inst, g: int, k: int, per_step: list[int] | None) -> int:
    """The first of the k steps from counter g at which SGLang's admission test
    (scheduler._sglang_prefill: prompt + min(output, clip) < free tokens − remaining output ×
    new-token ratio) lets the first waiting request in (k: none). Each step's test reads the
    free blocks before its own growth and the ratio before its own decay, as the step does."""
    seq = state.waiting[0]
    total = seq.remaining + min(seq.osl - seq.base, CLIP_NEW_TOKENS)
    size, free, r = state.block_size, state.free, inst.ratio[0]
    lasting = state.n_decode - state.clipped  # decoders whose remaining output falls per step
    rem = state.rem_sum - lasting * g + state.clipped * CLIP_NEW_TOKENS
    for j in range(k):
        if total < free * size - rem * r:
            return j
        if per_step is not None:
            free -= per_step[j]
        rem -= lasting
        r = max(r - _DECAY, _FLOOR)
    return k


def _grow_bulk(state, g: int, k: int) -> list[int] | None:
    """Serve every block growth due in the k steps from counter g at once, if every due decoder
    gets its block (the blocks they take in all, at most the free ones, so no step of them
    preempts): each decoder's blocks and next due counter as the steps one by one leave them
    (its due counters step by the block size), the free and peak blocks likewise; the blocks
    taken at each of the k steps (None, nothing changed: some step would preempt)."""
    keys, grow_at, size = state.grow_keys, state.grow_at, state.block_size
    end = g + k
    if keys[0] < g:
        return None
    due = []
    while keys and keys[0] < end:
        key = heapq.heappop(keys)
        due.append((key, grow_at.pop(key)))
    taken = 0
    for key, entries in due:
        for _, epoch, seq in entries:
            if epoch == seq.epoch and seq.decoding:
                taken += (end - 1 - key) // size + 1
    if taken > state.free:  # put the calendar back as it was
        for key, entries in due:
            grow_at[key] = entries
            heapq.heappush(keys, key)
        return None
    per_step = [0] * k
    for key, entries in due:
        grown = (end - 1 - key) // size + 1
        for i, epoch, seq in entries:
            if epoch != seq.epoch or not seq.decoding:
                continue
            for at in range(key - g, k, size):
                per_step[at] += 1
            seq.blocks += grown
            nxt = key + grown * size
            later = grow_at.get(nxt)
            if later is None:
                later = grow_at[nxt] = []
                heapq.heappush(keys, nxt)
            later.append((i, epoch, seq))
    state.free -= taken
    state.peak_blocks = max(state.peak_blocks, state.total_blocks - state.free)
    return per_step


def decode_stretch(inst, horizon: float) -> int:
    """Run the decode-only steps due before the next event, each starting before `horizon`
    (the next arrival); the number run (0: the next step is not decode-only, left to
    run_step)."""
    state = inst.state
    n = state.n_decode
    # a finish due within SHORT steps: run_step is as quick as setting up a stretch
    if not n or state.finish_heap[0][0] - state.g <= SHORT:
        return 0
    if len(state.running) != n + len(state.prefilling):
        return 0
    if state.prefilling and not _prefills_wait(inst):
        return 0
    refuses = _refuses(inst)
    if refuses is False:
        return 0
    sglang = inst.facts.policy == "sglang"
    size = state.block_size
    run = 0
    while inst.t < horizon:
        g = state.g
        k = state.finish_heap[0][0] - 1 - g  # the step that makes a last token: run_step's
        if k <= 0:
            break
        if sglang:
            clip = state.clip_heap
            if clip and clip[0][0] <= g:
                state.remaining_output()  # its clip moves, as the step's admission test does
            if clip:
                k = min(k, clip[0][0] - g)
        keys = state.grow_keys
        bulk = False
        if keys and keys[0] < g + k:
            # each decoder needs at most ⌈k / block size⌉ blocks in k steps: as many steps as
            # the free blocks surely cover, else one growth event at a time
            cover = state.free // n * size
            if cover:
                k, bulk = min(k, cover), True
            else:  # (SGLang tests admission before its growth: that step is run_step's)
                if keys[0] <= g and (refuses is None or not _grow_in_place(state)):
                    break
                if keys and keys[0] < g + k:
                    k = keys[0] - g
        c0 = state.a_sum + n * g
        t = inst.t
        if horizon != math.inf:  # no more steps than the first one's time fits before it
            first = _times(inst, n, c0, 1)[0][0]
            if first > 0:
                k = min(k, int((horizon - t) / first) + 2)
        if refuses is None:  # SGLang: up to the step whose admission test lets a request in
            k = _sglang_admits(state, inst, g, k, _growth_per_step(state, g, k)
                               if bulk and keys and keys[0] < g + k else None)
            if not k:
                break
        ests, lims, itl = _times(inst, n, c0, k)
        starts = list(accumulate(islice(ests, k), initial=t))
        if starts[k] >= horizon:  # only the steps that start before the next arrival
            k = bisect_left(starts, horizon, 0, k)
            if not k:
                break
        before = state.total_blocks - state.free
        used = repeat(before)  # KV blocks in use at each step's end, as run_step's trace has
        if bulk and keys and keys[0] < g + k:
            per_step = _grow_bulk(state, g, k)
            if per_step is None:  # (cannot happen: the free blocks cover the k steps)
                break
            used = islice(accumulate(per_step, initial=before), 1, None)
        if k < len(ests):
            ests, lims, itl = ests[:k], lims[:k], itl[:k]
        inst.t = starts[k]
        inst.t_lim = reduce(add, lims, inst.t_lim)
        inst.busy_s = reduce(add, ests, inst.busy_s)
        inst.itl.extend(itl)
        if inst.keep_trace:
            inst.trace.extend(zip(islice(starts, 1, k + 1), repeat(n), repeat(0), used))
        state.g = g + k
        inst.steps += k
        run += k
        if sglang:
            ratio = inst.ratio
            r = ratio[0]
            for _ in range(k):
                if r == _FLOOR:
                    break
                r = max(r - _DECAY, _FLOOR)
            ratio[0] = r
    return run
