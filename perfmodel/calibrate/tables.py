"""Small-shape tables the estimate interpolates: linear layers, attention, elementwise (contiguous
and strided), RMSNorm. The MoE tables are in `moe.py`.

Every point is timed by `Timer.rotated`: R copies in one CUDA graph, each on its own buffers,
rotating over more than 3x L2, so a point is the per-kernel time inside a graphed model step.
A point that runs out of memory or raises is null (linear) or left out (the others), with a
line in the profile's notes; one failure never stops the run.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Iterable

import perfmodel.calibrate.kernels as kernels
import perfmodel.calibrate.stats as stats
from perfmodel.calibrate.device import free_bytes
from perfmodel.calibrate.plan import (HEAD_DIM, HEADS, KV_HEADS, PREFILL_MAX_TOKENS, Plan,
                                      strided_shape)
from perfmodel.calibrate.timing import Timer
from perfmodel.hardware.gpu import AttentionTable, LinearTable

Step = Callable[[str], None]
KV_FRACTION = 1 / 3  # decode points whose KV cache needs more than this of free memory are skipped


def linear_table(dtype: str, plan: Plan, timer: Timer, step: Step,
                 notes: list[str]) -> LinearTable:
    """Seconds of y = x·Wᵀ for each (k, n) of the plan (rows) and each m (columns)."""
    rows = []
    for k, n in plan.linear_kn:
        weights: list[tuple[Any, ...]] = []

        def weight(i: int, k: int = k, n: int = n) -> tuple[Any, ...]:
            while len(weights) <= i:  # made once per (k, n), shared by every m
                weights.append(kernels.weight(dtype, n, k, timer.device))
            return weights[i]

        row = []
        for m in plan.linear_ms:
            label = f"linear {dtype} m={m} k={k} n={n}"
            step(label)

            def make(i: int, m: int = m, k: int = k) -> Callable[[], Any]:
                return kernels.linear(dtype, kernels.activation(dtype, m, k, timer.device),
                                      weight(i))

            set_bytes = kernels.weight_bytes(dtype, n, k) + kernels.activation_bytes(dtype, m, k)
            row.append(attempt(lambda: timer.rotated(make, set_bytes).median, label, notes, timer))
            timer.pause()
        rows.append(tuple(row))
        weights.clear()
        release(timer)
    return LinearTable(plan.linear_ms, plan.linear_kn, tuple(rows))


def attention_prefill(plan: Plan, timer: Timer, step: Step, notes: list[str]) -> AttentionTable:
    """Causal SDPA over b sequences of T tokens: N=32, K=8 (enable_gqa), H=128, bf16."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    points = []
    for b, t in plan.prefill:
        label = f"attention prefill b={b} T={t}"
        step(label)

        def make(i: int, b: int = b, t: int = t) -> Callable[[], Any]:
            q = _randn(b, HEADS, t, HEAD_DIM, device=timer.device)
            k, v = (_randn(b, KV_HEADS, t, HEAD_DIM, device=timer.device) for _ in range(2))
            return lambda: sdpa(q, k, v, is_causal=True, enable_gqa=True)

        set_bytes = 2 * b * t * HEAD_DIM * (HEADS + 2 * KV_HEADS)
        seconds = attempt(lambda: timer.rotated(make, set_bytes).median, label, notes, timer)
        if seconds is not None:
            points.append((b, t, seconds))
        timer.pause()
    skipped = [f"b={b} T={t}" for b, t in plan.prefill_skipped]
    if skipped:
        notes.append(f"attention prefill skipped (b*T > {PREFILL_MAX_TOKENS}): "
                     + ", ".join(skipped))
    return AttentionTable(HEADS, KV_HEADS, HEAD_DIM, tuple(points), phase="prefill")


def attention_decode(plan: Plan, timer: Timer, step: Step, notes: list[str]) -> AttentionTable:
    """SDPA of one query token per sequence against a KV cache of C tokens (not causal)."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    points = []
    for b, c in plan.decode:
        label = f"attention decode b={b} C={c}"
        step(label)
        kv_bytes = 2 * 2 * b * KV_HEADS * c * HEAD_DIM
        room = free_bytes(timer.device) * KV_FRACTION
        if kv_bytes > room:
            notes.append(f"{label} skipped: its KV cache ({kv_bytes / 1e9:.1f} GB) is more "
                         f"than 1/3 of free memory ({3 * room / 1e9:.1f} GB)")
            continue

        def make(i: int, b: int = b, c: int = c) -> Callable[[], Any]:
            q = _randn(b, HEADS, 1, HEAD_DIM, device=timer.device)
            k, v = (_randn(b, KV_HEADS, c, HEAD_DIM, device=timer.device) for _ in range(2))
            return lambda: sdpa(q, k, v, enable_gqa=True)

        seconds = attempt(lambda: timer.rotated(make, kv_bytes).median, label, notes, timer)
        if seconds is not None:
            points.append((b, c, seconds))
        release(timer)
        timer.pause()
    return AttentionTable(HEADS, KV_HEADS, HEAD_DIM, tuple(points), phase="decode")


def series(cases: Iterable[tuple[str, tuple, Callable[[int], Any], int]], timer: Timer,
           step: Step, notes: list[str]) -> tuple[tuple, ...]:
    """Time each case (label, key, make, bytes of one buffer set) as rotated copies in a graph;
    (*key, seconds) for every case that ran, a note for every one that did not."""
    points = []
    for label, key, make, set_bytes in cases:
        step(label)
        seconds = attempt(lambda: timer.rotated(make, set_bytes).median, label, notes, timer)
        if seconds is not None:
            points.append((*key, seconds))
        release(timer)
        timer.pause()
    return tuple(points)


def elementwise(plan: Plan, timer: Timer, step: Step,
                notes: list[str]) -> tuple[tuple[float, float], ...]:
    """(bytes moved, seconds) of an out-of-place bf16 add a + b over tensors of each size."""
    def cases():
        for nbytes in plan.elementwise_bytes:
            def make(i: int, numel: int = nbytes // 2) -> Callable[[], Any]:
                import torch

                a, b = _randn(numel, device=timer.device), _randn(numel, device=timer.device)
                return lambda: torch.add(a, b)
            yield (f"elementwise add {nbytes} B", (stats.elementwise_bytes(nbytes),), make,
                   2 * nbytes)
    return series(cases(), timer, step, notes)


def rmsnorm(plan: Plan, timer: Timer, step: Step,
            notes: list[str]) -> tuple[tuple[int, int, float], ...]:
    """(rows, D, seconds) of F.rms_norm(x, (D,), w, 1e-6), x (rows, D) bf16, w (D,) bf16.

    Latency-bound at few rows, bandwidth-bound at many.
    """
    import torch.nn.functional as F

    def cases():
        for d in plan.rmsnorm_dims:
            for rows in plan.rmsnorm_rows:
                def make(i: int, rows: int = rows, d: int = d) -> Callable[[], Any]:
                    x, w = _randn(rows, d, device=timer.device), _randn(d, device=timer.device)
                    return lambda: F.rms_norm(x, (d,), w, 1e-6)
                yield f"rmsnorm rows={rows} D={d}", (rows, d), make, 2 * (rows + 1) * d
    return series(cases(), timer, step, notes)


def strided(plan: Plan, timer: Timer, step: Step,
            notes: list[str]) -> tuple[tuple[float, float], ...]:
    """(bytes moved, seconds) of a * b, a = big.chunk(2, -1)[0] a strided (rows, w) view of a
    (rows, 2w) bf16 tensor, b contiguous: PyTorch's non-vectorized elementwise kernel, as on
    the halves of a fused gate-up output. Bytes = a read + b read + out written = 3·rows·w·2.
    """
    def cases():
        for nbytes in plan.strided_bytes:
            rows, width = strided_shape(nbytes)

            def make(i: int, rows: int = rows, width: int = width) -> Callable[[], Any]:
                a = _randn(rows, 2 * width, device=timer.device).chunk(2, dim=-1)[0]
                b = _randn(rows, width, device=timer.device)
                return lambda: a * b
            yield (f"strided multiply {nbytes} B", (stats.elementwise_bytes(2 * rows * width),),
                   make, 2 * 2 * rows * width)
    return series(cases(), timer, step, notes)


ROPE_HEADS, ROPE_QKV_HEADS, ROPE_HEAD_DIM = 32, 48, 128  # q of N=32 heads in a QKV of N+2K=48


def rope(plan: Plan, timer: Timer, step: Step,
         notes: list[str]) -> tuple[tuple[float, float], ...]:
    """(minimal bytes, seconds) of rotate-half RoPE as plain PyTorch ops (`x * cos +
    cat(-x2, x1) * sin`, five kernels) on q, a strided (T, N, H) view of a fused QKV output,
    with cos/sin (T, 1, H) broadcast: the unfused RoPE of Hugging Face-style code. Minimal bytes
    = q read + q written = 2·T·N·H·2.
    """
    import torch

    def cases():
        for t in plan.rope_tokens:
            def make(i: int, t: int = t) -> Callable[[], Any]:
                qkv = _randn(t, ROPE_QKV_HEADS * ROPE_HEAD_DIM, device=timer.device)
                q = qkv[:, :ROPE_HEADS * ROPE_HEAD_DIM].view(t, ROPE_HEADS, ROPE_HEAD_DIM)
                cos = _randn(t, 1, ROPE_HEAD_DIM, device=timer.device)
                sin = _randn(t, 1, ROPE_HEAD_DIM, device=timer.device)

                def apply() -> Any:
                    x1, x2 = q.chunk(2, dim=-1)
                    return q * cos + torch.cat((-x2, x1), dim=-1) * sin
                return apply
            yield (f"rope T={t}", (2 * t * ROPE_HEADS * ROPE_HEAD_DIM * 2,), make,
                   t * (ROPE_QKV_HEADS + 2) * ROPE_HEAD_DIM * 2)
    return series(cases(), timer, step, notes)


def silu_mul(plan: Plan, timer: Timer, step: Step,
             notes: list[str]) -> tuple[tuple[float, float], ...]:
    """(minimal bytes, seconds) of `F.silu(gate) * up`, gate and up the chunk views of a
    (rows, 2F) gate/up output: two kernels. Minimal bytes = 2F read + F written, 3·rows·F·2."""
    import torch.nn.functional as F

    def cases():
        for nbytes in plan.strided_bytes:
            rows, width = strided_shape(nbytes)

            def make(i: int, rows: int = rows, width: int = width) -> Callable[[], Any]:
                gate, up = _randn(rows, 2 * width, device=timer.device).chunk(2, dim=-1)
                return lambda: F.silu(gate) * up
            yield f"silu-mul {nbytes} B", (3 * rows * width * 2,), make, 2 * 2 * rows * width
    return series(cases(), timer, step, notes)


def attempt(measure: Callable[[], float], label: str, notes: list[str],
            timer: Timer) -> float | None:
    """measure(), or None with a note when it runs out of memory or the kernel raises."""
    import torch

    try:
        return measure()
    except torch.cuda.OutOfMemoryError:
        notes.append(f"{label}: out of memory")
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        notes.append(f"{label}: {kernels.one_line(exc)}")
    release(timer)
    return None


def release(timer: Timer) -> None:
    """Hand freed buffers back to the GPU, so the next shape starts from an empty cache. (A CPU
    needs nothing: reference counting frees the tensors, and gc.collect costs 0.1-0.2 s.)"""
    if timer.is_cuda:
        import torch

        gc.collect()
        torch.cuda.empty_cache()


def _randn(*shape: int, device: str) -> Any:
    import torch

    return torch.randn(*shape, dtype=torch.bfloat16, device=device)
