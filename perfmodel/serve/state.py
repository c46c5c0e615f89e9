"""The engine's state during a simulation: requests in flight, the KV blocks they hold, time.

Decoding sequences are not touched one by one each step. A global counter G counts decode steps;
a sequence that joined decoding at G₀ with `base` tokens generated before (0, or what it had made
before a preemption) has generated base + 1 + G − G₀ tokens and needs
L = I + base + 1 + G − G₀ KV slots during the step at counter G. So Σ L over decoders is
A + n·G, kept in O(1); finishing and block growth are heap events keyed by G. A step is O(its
prefill chunks + events), not O(batch), which makes thousands of steps cheap.
With speculative decoding (serve/speculative.py) each decoder emits a tokens per step on average
(the mean acceptance length): G then counts tokens per decoder, advancing by a each step, so the
same sums, heaps and calendar hold (a may be fractional: a sequence finishes at the first step
whose G reaches its last token, as an engine truncates the accepted run there).
"""

from __future__ import annotations

import heapq
from collections import deque

from perfmodel.serve.requests import RequestSpec

CLIP_NEW_TOKENS = 4096  # SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION, python/sglang/srt/environ.py


class Seq:
    """One request's mutable simulation state (private to the simulator)."""

    __slots__ = ("i", "isl", "osl", "arrival", "done", "target", "base", "blocks", "first",
                 "finish", "g0", "epoch", "arrival_lim", "first_lim", "finish_lim", "decoding",
                 "preemptions", "recomputed", "clipped", "prefix", "plen", "hit", "shared",
                 "held", "reused")

    def __init__(self, i: int, spec: RequestSpec, arrival: float, arrival_lim: float):
        self.i, self.isl, self.osl = i, spec.isl, spec.osl
        self.arrival, self.arrival_lim = arrival, arrival_lim
        self.done, self.target, self.base, self.blocks = 0, spec.isl, 0, 0
        self.first = self.finish = self.first_lim = self.finish_lim = None
        self.g0, self.epoch, self.decoding, self.preemptions = 0, 0, False, 0
        self.recomputed = 0  # recompute prefills that completed (each samples one token)
        self.clipped = False  # a decoder with more than CLIP_NEW_TOKENS outputs still to make
        # prefix caching (serve/prefix_cache.py): the shared prefix's id and length, the tentative
        # hit of a waiting request, the blocks it shares, whether it holds its entry, and the
        # cached tokens its first token's prefill reused
        self.prefix = spec.prefix_id if spec.prefix_len else None
        self.plen, self.hit, self.shared, self.held, self.reused = spec.prefix_len, 0, 0, False, 0

    @property
    def remaining(self) -> int:
        """Prefill tokens still to compute (prompt, plus regenerated tokens after preemption)."""
        return self.target - self.done


class State:
    """Queues, KV blocks and the decode counter; the policies in scheduler.py drive it."""

    def __init__(self, total_blocks: int, block_size: int):
        self.total_blocks, self.block_size = total_blocks, block_size
        self.cache = None  # a PrefixCache when prefix caching is on and requests share prefixes
        self.free = total_blocks
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []  # admission order; vLLM preempts from the end
        self.prefilling: list[Seq] = []
        self.g = 0
        self.decode_tokens = 1  # tokens each decoder runs per step: 1 + k when speculating
        self.n_decode = 0
        self.a_sum = 0  # Σ (I + base + 1 − G₀) over decoders: Σ L = a_sum + n_decode·g
        self.finish_heap: list[tuple[int, int, int, Seq]] = []
        # block growth as a calendar: grow_at[G] lists the decoders (i, epoch, seq) due a block
        # at counter G; grow_keys is a heap of the G that have a list
        self.grow_at: dict[int, list[tuple[int, int, Seq]]] = {}
        self.grow_keys: list[int] = []
        self.preemptions = 0
        self.peak_blocks = 0
        # Σ (O − base − 1 + G₀) over the decoders with at most CLIP_NEW_TOKENS outputs left:
        # their remaining outputs sum to this − (their count)·G; the others count CLIP each until
        # clip_heap (keyed by the G at which they reach the clip) moves them over
        self.rem_sum = 0
        self.clipped = 0
        self.clip_heap: list[tuple[int, int, int, Seq]] = []

    # -- KV blocks -------------------------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def alloc_to(self, seq: Seq, tokens: int) -> bool:
        """Grow seq's blocks to hold `tokens` slots; False (nothing taken) if too few are free."""
        if self.cache is not None and seq.prefix is not None:
            return self.cache.alloc_to(seq, tokens)
        need = self.blocks_for(tokens) - seq.blocks
        if need <= 0:
            return True
        if need > self.free:
            return False
        self.free -= need
        seq.blocks += need
        self.peak_blocks = max(self.peak_blocks, self.total_blocks - self.free)
        return True

    def release(self, seq: Seq) -> None:
        own = seq.blocks - seq.shared
        self.free += own
        seq.blocks = 0
        if self.cache is not None:
            self.cache.release(seq, own)

    @property
    def used_blocks(self) -> int:
        return self.total_blocks - self.free

    # -- decode bookkeeping ----------------------------------------------------------------
    def context_sum(self) -> int:
        """Σ L: KV slots the decoders read and write in the step at the current counter."""
        return self.a_sum + self.n_decode * self.g

    def start_decode(self, seq: Seq, grow: bool) -> None:
        """seq's prefill just made a token: it decodes from the next step on."""
        seq.decoding, seq.g0 = True, self.g
        self.n_decode += 1
        self.a_sum += seq.isl + seq.base + 1 - seq.g0
        left = seq.osl - seq.base - 1
        if left > CLIP_NEW_TOKENS:
            seq.clipped = True
            self.clipped += 1
            heapq.heappush(self.clip_heap, (seq.g0 + left - CLIP_NEW_TOKENS, seq.i, seq.epoch, seq))
        else:
            self.rem_sum += left + seq.g0
        heapq.heappush(self.finish_heap, (seq.g0 + seq.osl - 1 - seq.base, seq.i, seq.epoch, seq))
        if grow:
            self._push_grow(seq)

    def _push_grow(self, seq: Seq) -> None:
        key = seq.blocks * self.block_size - seq.isl - seq.base + seq.g0
        due = self.grow_at.get(key)
        if due is None:
            due = self.grow_at[key] = []
            heapq.heappush(self.grow_keys, key)
        due.append((seq.i, seq.epoch, seq))

    def growth_due(self) -> bool:
        """Whether a decoder may need a block at the current counter (due_growth's own test)."""
        return bool(self.grow_keys) and self.grow_keys[0] <= self.g

    def remaining_output(self) -> int:
        """Σ over running requests of min(output tokens still to make, CLIP_NEW_TOKENS), as
        SGLang's admission reserves them, in O(prefilling requests + clip events): the decoders'
        part is kept as a sum (integers, so exactly the loop's)."""
        heap = self.clip_heap
        while heap and heap[0][0] <= self.g:  # down to the clip: remaining − G from now on
            _, _, epoch, seq = heapq.heappop(heap)
            if epoch == seq.epoch and seq.decoding and seq.clipped:
                seq.clipped = False
                self.clipped -= 1
                self.rem_sum += seq.osl - seq.base - 1 + seq.g0
        return (self.rem_sum - (self.n_decode - self.clipped) * self.g
                + self.clipped * CLIP_NEW_TOKENS
                + sum(min(s.osl - s.base, CLIP_NEW_TOKENS) for s in self.prefilling))

    def generated(self, seq: Seq) -> int:
        return seq.base + 1 + self.g - seq.g0 if seq.decoding else seq.base

    def stop(self, seq: Seq) -> None:
        """Take seq out of the running set (finished or preempted); its heap entries go stale."""
        if seq.decoding:
            self.n_decode -= 1
            self.a_sum -= seq.isl + seq.base + 1 - seq.g0
            if seq.clipped:
                seq.clipped = False
                self.clipped -= 1
            else:
                self.rem_sum -= seq.osl - seq.base - 1 + seq.g0
            seq.decoding = False
        seq.epoch += 1
        self.running.remove(seq)
        if seq in self.prefilling:
            self.prefilling.remove(seq)
        self.release(seq)

    def preempt(self, seq: Seq) -> None:
        """Recompute preemption: free its blocks, requeue it first, prefill prompt + output."""
        made = int(self.generated(seq))  # whole tokens (G is fractional when speculating)
        self.stop(seq)
        seq.base, seq.done, seq.target = made, 0, seq.isl + made
        seq.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(seq)

    def due_growth(self, ordered: bool = True) -> list[Seq]:
        """Decoders that need one more block for the step at the current counter, in (due
        counter, request index) order (ordered=False: in no particular order, for a caller
        that gives every one its block regardless)."""
        keys, g = self.grow_keys, self.g
        if not keys or keys[0] > g:
            return []
        if not ordered and keys[0] == g and (len(keys) == 1 or keys[1] > g):
            entries = self.grow_at.pop(heapq.heappop(keys))  # one counter: the usual case
            return [seq for _, epoch, seq in entries if epoch == seq.epoch and seq.decoding]
        entries = []
        while keys and keys[0] <= g:
            key = heapq.heappop(keys)
            entries.extend((key, i, epoch, seq) for i, epoch, seq in self.grow_at.pop(key))
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        return [seq for _, _, epoch, seq in entries if epoch == seq.epoch and seq.decoding]

    def grew(self, seq: Seq) -> None:
        self._push_grow(seq)

    def grow_each(self, seqs: list[Seq]) -> None:
        """One more block for each of seqs, in order, when at least len(seqs) are free: what
        alloc_to + grew do one by one, in one pass."""
        self.free -= len(seqs)
        self.peak_blocks = max(self.peak_blocks, self.total_blocks - self.free)
        size, grow_at = self.block_size, self.grow_at
        for seq in seqs:
            seq.blocks += 1
            key = seq.blocks * size - seq.isl - seq.base + seq.g0
            due = grow_at.get(key)
            if due is None:
                due = grow_at[key] = []
                heapq.heappush(self.grow_keys, key)
            due.append((seq.i, seq.epoch, seq))

    def due_finish(self) -> list[Seq]:
        """Decoders whose last token the step just made."""
        done = []
        while self.finish_heap and self.finish_heap[0][0] <= self.g:
            _, _, epoch, seq = heapq.heappop(self.finish_heap)
            if epoch == seq.epoch and seq.decoding:
                done.append(seq)
        return done
