"""The `moe_block` table: a whole bf16 MoE block of the torch-cudagraph engine, end to end.

The block is `perfmodel.torchblocks.blocks.MoeMlp` itself (no shared experts, softmax → top-k →
renormalise routing): RMSNorm, router linear, routing, sorting the token-expert pairs and
gathering their rows, grouped GEMM gate/up, SiLU·mul, grouped GEMM down, combine (scatter back,
weight, sum the k experts), residual add. So the estimate composed from the per-kernel tables
can be checked against one measured number at decode batch sizes. Timed like every table (in
one CUDA graph; the weights, far larger than L2, come from HBM), on random tokens and weights.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from perfmodel.calibrate.plan import Plan
from perfmodel.calibrate.tables import Step, release, series
from perfmodel.calibrate.timing import Timer

FAMILY = "qwen3_moe"  # routing of torchblocks.blocks.route: softmax, top-k, renormalise


def moe_block(plan: Plan, timer: Timer, step: Step,
              notes: list[str]) -> tuple[tuple[int, int, int, int, int, float], ...]:
    """(tokens, E, k, D, F, seconds) for each MoE shape of the plan and each token count."""
    points: list[tuple[int, int, int, int, int, float]] = []
    for shape in plan.moe_shapes:
        blocks: list[Any] = []
        points += series(_cases(shape, plan.moe_tokens, blocks, timer), timer, step, notes)
        blocks.clear()
        release(timer)
    return tuple(points)


def block_bytes(experts: int, hidden: int, intermediate: int) -> int:
    """bf16 bytes of the experts' weights and the router: E·3·D·F·2 + E·D·2."""
    return 2 * experts * hidden * (3 * intermediate + 1)


def _cases(shape: tuple[int, int, int, int], tokens: tuple[int, ...], blocks: list[Any],
           timer: Timer) -> Iterator[tuple[str, tuple, Callable[[int], Any], int]]:
    experts, top_k, hidden, intermediate = shape

    def block(i: int) -> Any:
        while len(blocks) <= i:  # weights made once per shape, shared by every token count
            blocks.append(_build(shape, timer.device))
        return blocks[i]

    for count in tokens:
        def make(i: int, count: int = count) -> Callable[[], Any]:
            import torch

            x = torch.randn(count, 1, hidden, dtype=torch.bfloat16, device=timer.device)
            mlp = block(i)
            return lambda: mlp(x)
        yield (f"moe block E={experts} k={top_k} D={hidden} F={intermediate} T={count}",
               (count, experts, top_k, hidden, intermediate), make,
               block_bytes(experts, hidden, intermediate) + 2 * count * hidden)


def _build(shape: tuple[int, int, int, int], device: str) -> Any:
    import torch

    from perfmodel.model.spec import Mlp
    from perfmodel.torchblocks.blocks import MoeMlp

    experts, top_k, hidden, intermediate = shape
    spec = Mlp("moe", intermediate, num_experts=experts, top_k=top_k)
    return MoeMlp(spec, hidden, "bf16", FAMILY, torch.bfloat16, device)
