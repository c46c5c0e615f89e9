"""Attention tables beyond the reference N=32/K=8/H=128 pair: head dims, GQA groups, absorbed MLA
decode, sliding windows and sinks (`plan.attention_cases` lists them).

Every kernel is `F.scaled_dot_product_attention` on random bf16 q, k, v, as the torch-cudagraph
engine (`perfmodel/torchblocks/blocks.py`) calls it, timed like every table (rotated copies in one
CUDA graph, `tables.series`):

- prefill: q (b, N, T, H), k and v (b, K, T, H), causal, `enable_gqa`. A window W < T is the
  engine's banded causal boolean mask (T, T), which moves SDPA off the flash kernel.
- decode: q (b, N, 1, H) against k and v (b, K, L, H), not causal, L = C, or min(C, W) for a
  window (the engine reads only the last W cached tokens).
- MLA decode (absorbed, as DeepSeek-V3 decodes): N=128 query heads over ONE shared latent of
  width 576 whose first 512 columns are the value. SDPA has no kernel for it (flash stops at
  head dim 256; folding the heads into the query length ran the efficient kernel at 0.39 ms
  for C=4096 on an H200, 2026-11-27, 80x its bytes), so it is timed as DeepSeek-V3's own
  reference code runs it (deepseek-ai/DeepSeek-V3 inference/model.py, MLA.forward with
  attn_impl "absorb"): scores = einsum(q, latent) over the 576 columns, softmax in fp32 cast
  back to bf16, out = einsum(scores, latent[..., :512]). It reads the latent twice and writes
  and reads the (b, N, C) scores; FlashMLA reads the latent once.
- sinks (gpt-oss: one learned logit per head added to the softmax denominator): SDPA cannot add
  it. Given the row log-sum-exp l, the exact result is SDPA's output times sigmoid(l - sink), one
  elementwise pass over the output; the sink tables time SDPA plus that multiply by a (b, N, T,
  1) factor. This assumes the row statistics come free (fused kernels compute them anyway); a
  kernel with native sinks (FlashAttention 3, vLLM's Triton attention) adds one logit per head.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from perfmodel.calibrate.device import free_bytes
from perfmodel.calibrate.plan import AttentionCase, Plan
from perfmodel.calibrate.tables import KV_FRACTION, Step, series
from perfmodel.calibrate.timing import Timer
from perfmodel.hardware.gpu import AttentionTable


def attention_tables(plan: Plan, timer: Timer, step: Step,
                     notes: list[str]) -> tuple[AttentionTable, ...]:
    """One AttentionTable per case of the plan that measured at least one point."""
    found = []
    for case in plan.attention:
        points = series(_cases(case, timer, notes, step), timer, step, notes)
        if points:
            found.append(AttentionTable(case.heads, case.kv_heads, case.head_dim, points,
                                        phase=case.phase, kind=case.kind, window=case.window,
                                        sinks=case.sinks, v_head_dim=case.v_head_dim))
    return tuple(found)


def read_length(case: AttentionCase, length: int) -> int:
    """Key/value positions one decode query reads: C, or min(C, W) under a window."""
    return length if case.window is None else min(length, case.window)


def set_bytes(case: AttentionCase, b: int, length: int) -> int:
    """Bytes of one buffer set: q, k and v in bf16 (and a prefill window's boolean mask)."""
    n, k, h = case.heads, case.kv_heads, case.head_dim
    v_dim = case.v_head_dim or h
    if case.kind == "mla":  # one latent serves as k and (its first columns) v; the scores
        return 2 * b * (n * h + length * h) + 8 * b * n * length  # in bf16 and fp32
    if case.phase == "decode":
        return 2 * b * (n * h + k * read_length(case, length) * (h + v_dim))
    cut = case.window is not None and length > case.window
    return 2 * b * length * (n * h + k * (h + v_dim)) + (length * length if cut else 0)


def _cases(case: AttentionCase, timer: Timer, notes: list[str],
           step: Step) -> Iterator[tuple[str, tuple, Callable[[int], Any], int]]:
    for b, length in case.points:
        label = f"{case.label} b={b} {'C' if case.phase == 'decode' else 'T'}={length}"
        nbytes = set_bytes(case, b, length)
        room = free_bytes(timer.device) * KV_FRACTION
        if nbytes > room:
            step(label)
            notes.append(f"{label} skipped: its operands ({nbytes / 1e9:.1f} GB) are more than "
                         f"1/3 of free memory ({3 * room / 1e9:.1f} GB)")
            continue
        yield label, (b, length), _maker(case, b, length, timer.device), nbytes


def _maker(case: AttentionCase, b: int, length: int, device: str) -> Callable[[int], Any]:
    def make(i: int) -> Callable[[], Any]:
        import torch
        from torch.nn.functional import scaled_dot_product_attention as sdpa

        def randn(*shape: int) -> Any:
            return torch.randn(*shape, dtype=torch.bfloat16, device=device)

        n, k, h = case.heads, case.kv_heads, case.head_dim
        v_dim = case.v_head_dim or h
        if case.kind == "mla":
            q, latent = randn(b, n, h), randn(b, length, h)
            return lambda: _absorbed_mla(q, latent, v_dim)
        if case.phase == "decode":
            kv = read_length(case, length)
            q, key, value = randn(b, n, 1, h), randn(b, k, kv, h), randn(b, k, kv, v_dim)
            run = lambda: sdpa(q, key, value, enable_gqa=True)  # noqa: E731 (a kernel)
            t = 1
        else:
            q, key = randn(b, n, length, h), randn(b, k, length, h)
            value = randn(b, k, length, v_dim)
            mask = _banded(length, case.window, device)
            run = (lambda: sdpa(q, key, value, is_causal=True, enable_gqa=True)) if mask is None \
                else (lambda: sdpa(q, key, value, attn_mask=mask, enable_gqa=True))
            t = length
        if not case.sinks:
            return run
        factor = torch.rand(b, n, t, 1, dtype=torch.bfloat16, device=device)
        return lambda: run() * factor
    return make


def _absorbed_mla(q: Any, latent: Any, v_dim: int) -> Any:
    """DeepSeek-V3's absorbed decode for one query token: q (b, N, H), latent (b, C, H)."""
    import torch

    scores = torch.einsum("bhc,btc->bht", q, latent) * q.shape[-1] ** -0.5
    scores = scores.softmax(dim=-1, dtype=torch.float32).type_as(q)
    return torch.einsum("bht,btc->bhc", scores, latent[..., :v_dim])


def _banded(length: int, window: int | None, device: str) -> Any:
    """The engine's banded causal mask where a window cuts a prefill, else None (causal)."""
    if window is None or length <= window:
        return None
    from perfmodel.torchblocks.blocks import banded_causal_mask

    return banded_causal_mask(length, window, device)
