"""An engine's fused-MoE kernel, timed whole, in place of the op-by-op MoE block.

vLLM runs a routed-expert block as one call (`fused_experts`: align and sort the token-expert
pairs, the gate/up grouped GEMM, SiLU·mul, the down grouped GEMM, the weighted sum), tuned per
(experts, width, device, dtype) shape. An engine profile that timed that call on its GPU
(`tables.fused_moe`: calibrate/engine_kernels.py, per token count T) prices the block of a model
with exactly that shape (E experts, top-k, hidden D, expert width F, weight dtype) from the
measurement: the block's time at T tokens on the `experts_gate_up` op (log-log interpolation in
T, proportional to T past the largest point, the smallest point's time below it) and nothing on
`experts_act`, `experts_down` and `experts_combine`, which the call already holds. Any other
shape (another model, a TP or EP shard) keeps the op-by-op estimate.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Iterable, Mapping

from perfmodel.cost.ops import Op

Estimator = Callable[[Op], "float | None"]
HELD = ("experts_act", "experts_down", "experts_combine")


def block_seconds(points: list[tuple[float, float]], tokens: float) -> float:
    """The table's block time at `tokens` (module docstring)."""
    xs = [p[0] for p in points]
    if tokens <= xs[0]:
        return points[0][1]
    if tokens >= xs[-1]:
        return points[-1][1] * tokens / xs[-1]
    i = bisect.bisect_right(xs, tokens)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    w = math.log(tokens / x0) / math.log(x1 / x0)
    return math.exp(math.log(y0) + w * (math.log(y1) - math.log(y0)))


def matching_table(tables: Iterable[Mapping[str, Any]], experts: int, top_k: int, hidden: int,
                   width: int, dtype: str) -> list[tuple[float, float]] | None:
    for t in tables or ():
        if (t.get("experts"), t.get("top_k"), t.get("hidden"), t.get("width"),
                t.get("dtype")) == (experts, top_k, hidden, width, dtype) and t.get("points"):
            return sorted((float(a), float(b)) for a, b in t["points"])
    return None


def with_fused_moe(estimator: Estimator | None, tables, spec, weight_dtype: str
                   ) -> Estimator | None:
    """estimator with the MoE blocks of spec (the model one GPU holds, so a TP or EP shard has
    its own widths) priced from the engine's fused-MoE table where one matches its shape and
    weight dtype (module docstring); estimator itself where none does."""
    if estimator is None or not tables:
        return estimator
    moe = {layer.mlp for layer, _ in spec.layers if layer.mlp.kind == "moe"}
    if len(moe) != 1:
        return estimator
    mlp = moe.pop()
    points = matching_table(tables, mlp.num_experts, mlp.top_k, spec.hidden_size,
                            mlp.intermediate_size, weight_dtype)
    if points is None:
        return estimator

    def seconds(op: Op) -> float | None:
        if op.name == "experts_gate_up":
            tokens = op.shape[0] * op.shape[3] / mlp.top_k
            return op.count * block_seconds(points, tokens)
        if op.name in HELD:
            return 0.0
        return estimator(op)

    return seconds
