"""Prefix caching: requests that share a prompt prefix reuse its KV while the engine still holds it.

A request with RequestSpec.prefix_id shares its first prefix_len prompt tokens with every other
request of that id. At admission the engine looks the prefix up: the cached tokens are not
prefilled again (the request's first chunk starts at `done` = cached tokens, so its attention
still reads them: step_cost prices chunks over cached context), and their blocks are shared,
not allocated. The engines' rules (each read from its code):

- vLLM V1 (vllm/v1/core/kv_cache_manager.py, block_pool.py, v0.26.0): hashed full blocks of
  block_size (16, vllm/config/cache.py), so only whole blocks hit; a hit is capped at the
  prompt less one token (max_cache_hit_length = num_tokens − 1: the last token's logits must be
  computed) and rounded down to a block; a block is cached when it is scheduled
  (allocate_slots → cache_blocks), so a request admitted later in the same step already hits it;
  freed blocks join the back of the free queue (a request's blocks tail first), allocation takes
  from the front and evicts what a cached block held: an LRU over all freed blocks. Prefix
  caching is on by default (CacheConfig.enable_prefix_caching = True; off for hybrid models,
  engine/arg_utils.py _set_default_chunked_prefill_and_prefix_caching_args).
- SGLang (python/sglang/srt/mem_cache/radix_cache.py, managers/schedule_batch.py
  _compute_max_prefix_len, v0.5): a radix tree at token granularity (page_size 1), a hit capped
  at the prompt less one token; a prefill chunk is inserted once computed; unreferenced nodes are
  evicted least recently used when the free slots run out. On unless --disable-radix-cache.
- TensorRT-LLM (tensorrt_llm/llmapi/llm_args.py KvCacheConfig, v1.0): KV block reuse, on by
  default (enable_block_reuse True), blocks of tokens_per_block 32, a partially matched last
  block reused by copy (enable_partial_reuse, copy_on_partial_reuse True): token granularity;
  blocks are offered for reuse once the context phase computed them, LRU eviction.

The simulator keeps one entry per prefix id, not per token or block: its cached tokens, the
whole blocks they fill, and the running requests holding it (ref count). An entry nobody holds
sits in the free pool as the engines keep it: its blocks count as free, and it is lost block by
block (its last block first) once allocation has taken every free block ahead of it in the
queue. With `pops` the blocks allocation has taken so far, an entry released when F blocks
were free ahead of it goes when pops passes its mark, pops then + F (less the blocks of
entries ahead of it that a request took back). Not modelled: vLLM puts a request's partial
last block at the front of the queue (the simulator puts it at the back: a prefix is evicted a
little early), the unique parts of finished requests are never reused (their prompts differ).
"""

from __future__ import annotations

from dataclasses import dataclass

# engine policy → (hit granularity: "block" = whole blocks only, "token"; blocks cached when
# scheduled (True) or once computed (False)), sources in the module docstring
REUSE = {"vllm": ("block", True), "sglang": ("token", False), "trtllm": ("token", False)}


@dataclass(frozen=True)
class PrefixStats:
    """What prefix caching did in one run (tokens, in SI's sense of counts)."""

    prompt_tokens: int  # prompt tokens of every admission (recomputes after preemption too)
    cached_tokens: int  # of those, found in the cache: the prefill tokens saved
    evicted_tokens: int  # cached prefix tokens evicted to make room
    granularity: int  # tokens a hit is a whole multiple of (vLLM's block; 1 for token level)

    @property
    def hit_rate(self) -> float | None:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None

    def to_dict(self) -> dict:
        return {"enabled": True, "granularity_tokens": self.granularity,
                "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
                "hit_rate": self.hit_rate, "prefill_tokens_saved": self.cached_tokens,
                "evicted_tokens": self.evicted_tokens}


class _Entry:
    __slots__ = ("tokens", "blocks", "refs", "mark")

    def __init__(self):
        self.tokens = self.blocks = self.refs = 0
        self.mark = 0  # unreferenced: the pops count past which its blocks go (its last first)


class PrefixCache:
    """The cached prefixes of one engine instance; State calls it (see state.py)."""

    def __init__(self, state, policy: str, engine_block: int):
        grain, self.at_schedule = REUSE[policy]
        self.state = state
        self.unit = engine_block if grain == "block" else 1
        self.entries: dict[int, _Entry] = {}
        self.idle: dict[int, _Entry] = {}  # unreferenced entries, in free-queue order
        self.returned = self.touched = 0  # blocks put back into / taken out of the free queue
        self.prompt_tokens = self.cached_tokens = self.evicted_blocks = 0

    def _pops(self) -> int:
        """Blocks allocation has taken from the free queue so far."""
        st = self.state
        return st.total_blocks + self.returned - self.touched - st.free

    def _settle(self, key: int, entry: _Entry) -> None:
        """Apply the evictions allocation has made to an unreferenced entry so far."""
        gone = min(max(self._pops() - entry.mark, 0), entry.blocks)
        if gone:
            entry.blocks -= gone
            entry.mark += gone
            entry.tokens = min(entry.tokens, entry.blocks * self.state.block_size)
            self.evicted_blocks += gone
        if not entry.blocks:
            entry.tokens = 0
            del self.idle[key]

    def lookup(self, seq) -> None:
        """A waiting request's tentative hit: seq.done and seq.hit = the cached tokens it would
        reuse if admitted now (nothing is taken yet)."""
        entry = self.entries.get(seq.prefix)
        if entry is not None and entry.refs == 0 and seq.prefix in self.idle:
            self._settle(seq.prefix, entry)
        cached = entry.tokens if entry is not None else 0
        if seq.done > seq.hit:  # its KV arrived with it (a disaggregated decode instance)
            return
        cap = min(seq.plen, seq.target - 1)
        hit = min(cached, cap - cap % self.unit)
        seq.done = seq.hit = max(hit, 0)

    def alloc_to(self, seq, tokens: int) -> bool:
        """State.alloc_to for a request with a prefix: admission (admit) or growth, the blocks
        scheduled for computing offered to the entry where the engine caches at scheduling."""
        if not seq.held:
            return self.admit(seq, tokens)
        st = self.state
        need = st.blocks_for(tokens) - seq.blocks
        if need > 0:
            if need > st.free:
                return False
            st.free -= need
            seq.blocks += need
            st.peak_blocks = max(st.peak_blocks, st.total_blocks - st.free)
        if self.at_schedule:
            self.computed(seq, tokens)
        return True

    def admit(self, seq, tokens: int) -> bool:
        """Admit seq with blocks for `tokens` slots, its hit's whole blocks shared (an entry
        nobody held is taken back from the free queue whole); False (nothing taken) if too few
        blocks are free."""
        st = self.state
        key = seq.prefix
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry()
        queued = key in self.idle
        if queued:
            self._settle(key, entry)
            queued = key in self.idle
        shared = min(seq.hit // st.block_size, entry.blocks)
        if queued and shared < entry.blocks:  # it reuses fewer blocks than the entry has: the
            entry.mark += entry.blocks - shared  # rest stay in the queue, forgotten
            entry.blocks, entry.tokens = shared, min(entry.tokens, seq.hit)
            if not shared:
                entry.tokens = 0
                del self.idle[key]
                queued = False
        need = st.blocks_for(tokens) - shared + (entry.blocks if queued else 0)
        if need > st.free:
            return False
        if queued:
            self._take_back(key, entry)
        st.free -= need
        st.peak_blocks = max(st.peak_blocks, st.total_blocks - st.free)
        entry.refs += 1
        seq.blocks, seq.shared, seq.held = st.blocks_for(tokens), shared, True
        self.prompt_tokens += seq.target
        self.cached_tokens += seq.hit
        if seq.first is None:
            seq.reused = seq.hit
        seq.hit = 0
        if self.at_schedule:
            self.computed(seq, tokens)
        return True

    def _take_back(self, key: int, entry: _Entry) -> None:
        """A request reuses an unreferenced entry: its blocks leave the free queue, and the
        entries behind it (a later mark) move up by as many."""
        del self.idle[key]
        self.touched += entry.blocks
        for other in self.idle.values():
            if other.mark > entry.mark:
                other.mark -= entry.blocks

    def computed(self, seq, tokens: int) -> None:
        """seq's first `tokens` prompt tokens are computed (or scheduled): the entry grows to
        them if seq holds all of it so far (whole blocks move from seq's own to the entry)."""
        entry = self.entries[seq.prefix]
        size = self.state.block_size
        upto = min(tokens, seq.plen)
        upto -= upto % self.unit
        if upto <= entry.tokens or seq.shared != entry.blocks:
            return
        entry.tokens = upto
        blocks = upto // size
        seq.shared += blocks - entry.blocks
        entry.blocks = blocks

    def release(self, seq, own: int) -> None:
        """seq stopped (finished or preempted) and its `own` blocks went back to the free queue;
        it lets go of its entry, whose last holder puts the entry's blocks behind them."""
        self.returned += own
        if not seq.held:
            return
        seq.held, seq.shared = False, 0
        key = seq.prefix
        entry = self.entries[key]
        entry.refs -= 1
        if entry.refs:
            return
        if not entry.blocks:
            entry.tokens = 0
            return
        st = self.state
        entry.mark = self._pops() + st.free
        st.free += entry.blocks
        self.returned += entry.blocks
        self.idle[key] = entry

    def stats(self) -> PrefixStats:
        for key, entry in list(self.idle.items()):
            self._settle(key, entry)
        return PrefixStats(self.prompt_tokens, self.cached_tokens,
                           self.evicted_blocks * self.state.block_size, self.unit)


def prefix_doc(out, enabled: bool) -> dict:
    """The run's prefix_cache document (docs/json.md) from its Outcome: what prefix caching
    did, or, with it off, the prompt tokens it would have looked up and no hit."""
    if enabled and out.prefix is not None:
        return out.prefix.to_dict()
    prompt = sum(d.isl for d in out.done)
    return {"enabled": False, "granularity_tokens": None, "prompt_tokens": prompt,
            "cached_tokens": 0, "hit_rate": 0.0, "prefill_tokens_saved": 0,
            "evicted_tokens": 0}


def merged_stats(caches) -> PrefixStats | None:
    """The prefix figures of many instances (a fleet's replicas) summed; None without any."""
    stats = [c.stats() for c in caches if c is not None]
    if not stats:
        return None
    return PrefixStats(sum(s.prompt_tokens for s in stats), sum(s.cached_tokens for s in stats),
                       sum(s.evicted_tokens for s in stats), stats[0].granularity)
