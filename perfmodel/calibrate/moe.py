"""MoE tables: routing (softmax, top-k, renormalise), sorting token-expert pairs by expert, and
the grouped GEMM of the routed experts, at E=128 experts and top-8 for the first two.

Timed like every table (`Timer.rotated`: many copies in one CUDA graph over buffer sets rotating
past 3x L2), on random data: routing on randn logits, the sort on the ids of a real top-k (k
distinct experts per token), the grouped GEMM on randn rows and weights. A point that runs out
of memory or raises is left out with a note; a grouped dtype that does not run here at all is
listed under `unsupported` and its table is absent.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import perfmodel.calibrate.kernels as kernels
from perfmodel.calibrate.plan import ROUTE_EXPERTS, ROUTE_TOP_K, Plan
from perfmodel.calibrate.tables import Step, attempt, release, series
from perfmodel.calibrate.timing import Timer

Points = tuple[tuple[int, float], ...]


def route(logits: Any, top_k: int) -> tuple[Any, Any]:
    """(weights, expert ids), each (T, k): softmax in fp32, top-k, weights renormalised to 1."""
    import torch

    probs = torch.softmax(logits.float(), dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    return weights / weights.sum(dim=-1, keepdim=True), ids


def sort_pairs(ids: Any, experts: Any, top_k: int) -> tuple[Any, Any, Any]:
    """(order, offs, rows) of the T·k (token, expert) pairs in ids (T, k): the pairs in expert
    order (stable), each expert's end row in that order (int32, cumulative), each pair's token."""
    import torch

    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    offs = torch.searchsorted(flat[order], experts, right=True, out_int32=True)
    return order, offs, order // top_k


def routing(plan: Plan, timer: Timer, step: Step, notes: list[str]) -> Points:
    """(T tokens, seconds) of `route` on random bf16 logits (T, E)."""
    import torch

    def make(tokens: int) -> Callable[[int], Callable[[], Any]]:
        def one(i: int) -> Callable[[], Any]:
            logits = torch.randn(tokens, ROUTE_EXPERTS, dtype=torch.bfloat16, device=timer.device)
            return lambda: route(logits, ROUTE_TOP_K)
        return one

    return series(((f"routing T={t}", (t,), make(t), 2 * t * ROUTE_EXPERTS)
                   for t in plan.route_tokens), timer, step, notes)


def sort(plan: Plan, timer: Timer, step: Step, notes: list[str]) -> Points:
    """(pairs T·k, seconds) of `sort_pairs` on the ids of a top-k over random scores (T, E)."""
    import torch

    experts = torch.arange(ROUTE_EXPERTS, device=timer.device)

    def make(tokens: int) -> Callable[[int], Callable[[], Any]]:
        def one(i: int) -> Callable[[], Any]:
            scores = torch.rand(tokens, ROUTE_EXPERTS, device=timer.device)
            ids = torch.topk(scores, ROUTE_TOP_K, dim=-1).indices  # int64, k distinct per token
            return lambda: sort_pairs(ids, experts, ROUTE_TOP_K)
        return one

    return series(((f"sort T={t}", (t * ROUTE_TOP_K,), make(t), 8 * t * ROUTE_TOP_K)
                   for t in plan.route_tokens), timer, step, notes)


def grouped_table(dtype: str, plan: Plan, timer: Timer, step: Step,
                  notes: list[str]) -> tuple[tuple[int, int, int, int, float], ...]:
    """(m, k, n, t, seconds) of the routed experts' product: t experts of (n, k) weights, each
    receiving m rows (t·m rows of k, sorted by expert); the weights hold exactly t experts, so
    each is read once per kernel, from HBM (the weights rotate like a linear layer's)."""
    import torch

    points = []
    touched = sorted({t for t, _ in plan.grouped})
    for (k, n), experts in itertools.product(plan.grouped_kn, touched):
        weights: list[tuple[Any, ...]] = []

        def weight(i: int, t: int = experts, k: int = k, n: int = n) -> tuple[Any, ...]:
            while len(weights) <= i:  # made once per (t, k, n), shared by every m
                weights.append(kernels.grouped_weight(dtype, t, n, k, timer.device))
            return weights[i]

        for m in (m for t, m in plan.grouped if t == experts):
            label = f"grouped {dtype} t={experts} m={m} k={k} n={n}"
            step(label)

            def make(i: int, t: int = experts, m: int = m, k: int = k) -> Callable[[], Any]:
                xs = torch.randn(t * m, k, dtype=torch.bfloat16, device=timer.device)
                offs = torch.arange(1, t + 1, dtype=torch.int32, device=timer.device) * m
                return kernels.grouped(dtype, xs, weight(i), offs)

            set_bytes = kernels.grouped_weight_bytes(dtype, experts, n, k) + 2 * experts * m * k
            seconds = attempt(lambda: timer.rotated(make, set_bytes).median, label, notes, timer)
            if seconds is not None:
                points.append((m, k, n, experts, seconds))
            timer.pause()
        weights.clear()
    release(timer)
    return tuple(points)


def grouped_tables(plan: Plan, timer: Timer, step: Any, notes: list[str],
                   unsupported: dict[str, str]) -> dict[str, tuple]:
    """The grouped table of each dtype that runs here; the others go to `unsupported` as
    grouped_<dtype> with the reason, and their steps are skipped (`step.skip`)."""
    found = {}
    for dtype in plan.grouped_dtypes:
        reason = kernels.probe_grouped(dtype, timer.device)
        if reason is not None:
            unsupported[f"grouped_{dtype}"] = reason
            step.skip(plan.grouped_steps, f"grouped {dtype}: unsupported")
            continue
        points = grouped_table(dtype, plan, timer, step, notes)
        if points:
            found[dtype] = points
    return found
