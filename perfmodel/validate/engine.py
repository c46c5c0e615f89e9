"""The torch-cudagraph engine's model: a decoder from a ModelSpec with random weights on one device.

Engine.prefill and Engine.decode are the eager forwards; timing.py captures them in CUDA graphs
and profiles them. The KV cache is kept in the activation dtype (bf16) at every precision. fp8
and int8 linears quantize their inputs by the precision's act_scheme (torchblocks/linear.py).
"""

from __future__ import annotations

import gc

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from perfmodel.errors import WorkloadError
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.precision import Precision
from perfmodel.torchblocks.blocks import (EPS, Step, banded_causal_mask, build_layer, reduced,
                                       rope_tables)
from perfmodel.torchblocks.linear import dtype_of, weight_kind

Cache = list[tuple[torch.Tensor, torch.Tensor]]
WEIGHT_KINDS = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")


class Engine:
    """Random weights of every layer, the embedding, final norm and LM head, on `device`.

    max_batch and max_context bound the shapes the engine accepts (the RoPE tables span
    max_context positions); KV caches are allocated per measurement with new_cache.
    """

    def __init__(self, spec: ModelSpec, precision: Precision, *, max_batch: int,
                 max_context: int, device: str):
        if precision.scope != "linear" or precision.weight_dtype not in WEIGHT_KINDS:
            raise WorkloadError(f"the torch-cudagraph engine cannot run {precision.label}; "
                                "use --precision bf16, fp16, fp8, int8 or int4")
        if max_batch < 1 or max_context < 1:
            raise WorkloadError("max_batch and max_context must be at least 1")
        self.spec, self.precision, self.device = spec, precision, str(device)
        self.max_batch, self.max_context = max_batch, max_context
        self.dtype = dtype_of(precision.base_dtype)
        self.kv_dtype = precision.base_dtype
        d, v, dtype = spec.hidden_size, spec.vocab_size, self.dtype
        self.embed = torch.randn((v, d), dtype=dtype, device=self.device)
        self.lm_head = self.embed if spec.tie_word_embeddings else \
            torch.randn((v, d), dtype=dtype, device=self.device).mul_(d ** -0.5)
        self.final_norm = torch.ones(d, dtype=dtype, device=self.device)
        self.layers = []
        kind = weight_kind(precision.weight_dtype, precision.act_scheme)
        for layer, count in spec.layers:
            for _ in range(count):
                attention, mlp = build_layer(layer, d, kind, spec.model_type,
                                             dtype, self.device)
                self.layers.append((layer, attention, mlp))
        self.rope = {h: rope_tables(h, max_context, dtype, self.device)
                     for h in {layer.attention.head_dim for layer, _ in spec.layers}}
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self.reduce = self.gather = None  # tensor-parallel hooks (validate/distributed.py)

    @property
    def graphable(self) -> bool:
        """False when a per-expert loop stands in for the grouped GEMM (it reads the host)."""
        return all(getattr(mlp, "graphable", True) for _, _, mlp in self.layers)

    def new_cache(self, batch: int, capacity: int, *, random: bool = False) -> Cache:
        """One (K, V) pair per layer, each (B, S, K, H); random values when they will be read."""
        self._check(batch, capacity)
        make = torch.randn if random else torch.empty
        cache = []
        for layer, _, _ in self.layers:
            a = layer.attention
            cache.append((make((batch, capacity, a.num_kv_heads, a.head_dim), dtype=self.dtype,
                               device=self.device),
                          make((batch, capacity, a.num_kv_heads, a.v_head_dim), dtype=self.dtype,
                               device=self.device)))
        return cache

    def prefill(self, tokens: torch.Tensor, cache: Cache) -> torch.Tensor:
        """Logits (B, V) of the last of T new tokens per sequence; K/V land in cache[:, :T]."""
        return self._forward(tokens, cache, start=0, prefill=True)

    def decode(self, tokens: torch.Tensor, cache: Cache, context: int) -> torch.Tensor:
        """Logits (B, V) of one new token per sequence at position context - 1."""
        return self._forward(tokens[:, None], cache, start=context - 1, prefill=False)

    def _forward(self, tokens: torch.Tensor, cache: Cache, *, start: int,
                 prefill: bool) -> torch.Tensor:
        batch, length = tokens.shape
        self._check(batch, start + length)
        if cache[0][0].shape[0] != batch or cache[0][0].shape[1] < start + length:
            raise WorkloadError(f"a KV cache of {tuple(cache[0][0].shape[:2])} (B, S) cannot hold "
                                f"{batch} sequences of {start + length} tokens")
        steps = self._steps(prefill, start, length)
        with record_function("embed"):
            x = F.embedding(tokens, self.embed)
        x = reduced(self, x, "embed_all_reduce")
        for (layer, attention, mlp), kv in zip(self.layers, cache):
            x = mlp(attention(x, kv, steps[layer.attention.head_dim]))
        with record_function("final_norm"):
            x = F.rms_norm(x[:, -1], (x.shape[-1],), self.final_norm, EPS)
        with record_function("lm_head"):
            logits = F.linear(x, self.lm_head)
        if self.gather is None:
            return logits
        with record_function("lm_head_all_gather"):
            return self.gather(logits)

    def _steps(self, prefill: bool, start: int, length: int) -> dict[int, Step]:
        masks = {}
        if prefill:
            for layer, _ in self.spec.layers:
                window = layer.attention.window
                if window is not None and length > window:
                    key = (length, window)
                    if key not in self._masks:
                        self._masks[key] = banded_causal_mask(length, window, self.device)
                    masks[window] = self._masks[key]
        return {h: Step(prefill, start, length, cos[start:start + length],
                        sin[start:start + length], masks)
                for h, (cos, sin) in self.rope.items()}

    def _check(self, batch: int, tokens: int) -> None:
        if not 1 <= batch <= self.max_batch or not 1 <= tokens <= self.max_context:
            raise WorkloadError(f"batch {batch} × {tokens} tokens is outside this engine's "
                                f"max_batch {self.max_batch}, max_context {self.max_context}; "
                                "build it with larger limits")

    def clear_masks(self) -> None:
        self._masks.clear()


def build_engine(spec: ModelSpec, precision: Precision, *, max_batch: int, max_context: int,
                 device: str = "cuda") -> Engine:
    """An Engine with random weights, or a WorkloadError if the weights do not fit the device."""
    try:
        return Engine(spec, precision, max_batch=max_batch, max_context=max_context,
                      device=device)
    except torch.cuda.OutOfMemoryError:
        pass
    free_memory()
    params = spec.params.total
    raise WorkloadError(f"the random weights of this model ({params / 1e9:.1f} B parameters at "
                        f"{precision.name}) do not fit in {device}'s memory; pick a smaller "
                        "model or precision")


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
