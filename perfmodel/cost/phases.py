"""The parts of a prediction, on one GPU or one GPU of many: the costed ops of a phase (Phase),
the memory (Memory), the Prediction, and how a list of ops and the mean decode step are costed.
cost/predict.py and cost/parallel_predict.py both build on this module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.collective import EngineComm, collective_cost
from perfmodel.cost.ops import Op, forward_ops
from perfmodel.cost.parallel import COLLECTIVE
from perfmodel.cost.precision import Precision
from perfmodel.cost.roofline import OpCost, cost, mean_of_max
from perfmodel.cost.workload import Workload

Estimator = Callable[[Op], "float | None"]


@dataclass(frozen=True)
class Phase:
    """The costed ops of one prefill, or of the mean decode step.

    limit_s sums the matmul, grouped-matmul and attention ops only (the seed's method): a fused
    engine folds the elementwise ops into GEMM epilogues and attention, so they are not part of
    the floor. They keep their own roofline (fusable_s) and their estimate, which estimate_s
    includes, since the engines modelled here launch them."""

    name: str
    costs: tuple[OpCost, ...]

    @property
    def limit_s(self) -> float:
        return sum(c.limit_s for c in self.costs if not c.op.fusable)

    @property
    def fusable_s(self) -> float:
        """The rooflines of the elementwise (fusable) ops, outside limit_s."""
        return sum(c.limit_s for c in self.costs if c.op.fusable)

    @property
    def estimate_s(self) -> float | None:
        parts = [c.estimate_s for c in self.costs]
        return None if not parts or None in parts else sum(parts)


@dataclass(frozen=True)
class Memory:
    """Bytes the weights and the KV cache take, and how many sequences fit beside the weights."""

    weights_bytes: float
    kv_bytes_per_token: float  # across all layers, before any sliding window caps it
    kv_bytes: float  # B sequences of I + O tokens, windows applied
    kv_bytes_per_sequence: float
    gpu_bytes: float

    @property
    def fits(self) -> bool:
        return self.weights_bytes + self.kv_bytes <= self.gpu_bytes

    @property
    def max_batch(self) -> int:
        free = self.gpu_bytes - self.weights_bytes
        return max(0, int(free // self.kv_bytes_per_sequence)) if free > 0 else 0


@dataclass(frozen=True)
class Prediction:
    """Limits (and estimates, where the GPU profile supports them) of one workload."""

    spec: ModelSpec
    precision: Precision
    gpu: GpuSpec
    workload: Workload
    prefill: Phase
    decode: Phase | None  # None when O = 1: no decode step follows the first token
    memory: Memory
    parallel: object = None  # cost/parallel.Parallel, None on one GPU; memory is then per GPU

    def _metrics(self, ttft: float | None, itl: float | None) -> dict[str, float | None]:
        w = self.workload
        if ttft is None or (self.decode is not None and itl is None):
            return {"ttft_s": None, "itl_s": None, "throughput_tok_s": None, "decode_tok_s": None}
        total = ttft + (w.decode_steps * itl if itl is not None else 0.0)
        return {"ttft_s": ttft, "itl_s": itl, "throughput_tok_s": w.batch * w.output_len / total,
                "decode_tok_s": w.batch / itl if itl else None}

    @property
    def limit(self) -> dict[str, float | None]:
        """TTFT, ITL, throughput B·O / (TTFT + (O−1)·ITL) and decode tokens/s B / ITL."""
        return self._metrics(self.prefill.limit_s, self.decode.limit_s if self.decode else None)

    @property
    def estimate(self) -> dict[str, float | None] | None:
        if self.prefill.estimate_s is None:
            return None
        return self._metrics(self.prefill.estimate_s,
                             self.decode.estimate_s if self.decode else None)


def memory(spec: ModelSpec, precision: Precision, gpu: GpuSpec, workload: Workload) -> Memory:
    """Weights at each role's precision; KV cache at the KV dtype."""
    p, base, quant = spec.params, precision.base_bytes, precision.weight_bytes
    linear_bytes = quant if precision.scope == "linear" else base
    weights = (p.embedding + p.lm_head + p.router + p.norms) * base \
        + (p.attention + p.dense_mlp + p.shared_experts) * linear_bytes + p.experts * quant
    per_token = sum(count * layer.attention.kv_cache_elems_per_token
                    for layer, count in spec.layers) * precision.kv_bytes
    per_seq = spec.kv_cache_elems(workload.final_context) * precision.kv_bytes
    return Memory(weights, per_token, workload.batch * per_seq, per_seq, gpu.mem_bytes)


Comm = EngineComm  # the collectives under a serving engine's own all-reduce


def _costed(op: Op, gpu: GpuSpec, estimator: Estimator | None, comm: Comm | None = None,
            fused: tuple[str, ...] = ()) -> OpCost:
    """One op's OpCost; fused names the norms that run inside the engine's all-reduce (no
    time of their own, comm.fused_norms)."""
    if op.kind == COLLECTIVE:  # NCCL (or comm: the engine's all-reduce) over the link
        return comm(op) if comm else collective_cost(op, gpu, estimator is not None)
    if op.name in fused:
        return cost(op, gpu, 0.0 if estimator else None)
    return cost(op, gpu, estimator(op) if estimator else None)


def _segments(spec: ModelSpec, lo: int, hi: int) -> list[tuple[int, int]]:
    """Split contexts lo..hi where a sliding window starts to cap, so each piece is affine."""
    cuts = sorted({layer.attention.window for layer, _ in spec.layers
                   if layer.attention.window and lo <= layer.attention.window < hi})
    bounds, start = [], lo
    for cut in cuts:
        bounds.append((start, cut))
        start = cut + 1
    bounds.append((start, hi))
    return bounds


def _mean_decode(spec: ModelSpec, precision: Precision, gpu: GpuSpec, workload: Workload,
                 estimator: Estimator | None, forward: Callable = forward_ops,
                 comm: Comm | None = None) -> Phase:
    """The decode step averaged over contexts I+1 … I+O−1, exactly for the limit.

    Within a segment every op's FLOPs and bytes are affine in the context, so the mean of its
    roofline time follows from the segment's two ends (mean_of_max); the estimate is averaged
    by the trapezoid rule on the same ends.
    """
    lo, hi = workload.input_len + 1, workload.input_len + workload.decode_steps
    totals: list[list[float]] = []
    first: list[Op] = []
    for a, b in _segments(spec, lo, hi):
        n = b - a + 1
        ends = [forward(spec, precision, "decode", workload.batch, 1, c) for c in (a, b)]
        fused = comm.fused_norms(ends[0]) if comm else ()  # a decode step's size is its batch
        for i, (op_a, op_b) in enumerate(zip(*ends)):
            ca = _costed(op_a, gpu, estimator, comm, fused)
            same = op_a.flops == op_b.flops and op_a.bytes == op_b.bytes and \
                op_a.shape == op_b.shape  # most ops do not depend on the context
            cb = ca if same else _costed(op_b, gpu, estimator, comm, fused)
            est = None if ca.estimate_s is None else n * (ca.estimate_s + cb.estimate_s) / 2
            row = [n * (op_a.flops + op_b.flops) / 2, n * (op_a.bytes + op_b.bytes) / 2,
                   n * (ca.compute_s + cb.compute_s) / 2, n * (ca.memory_s + cb.memory_s) / 2,
                   n * mean_of_max(ca.compute_s, ca.memory_s, cb.compute_s, cb.memory_s, n),
                   est]
            if len(totals) <= i:
                totals.append(row)
                first.append(op_a)
            else:
                totals[i] = [None if x is None or y is None else x + y
                             for x, y in zip(totals[i], row)]
    steps = workload.decode_steps
    costs = []
    for op, (flops, nbytes, comp, mem, lim, est) in zip(first, totals):
        mean_op = op.with_work(flops / steps, nbytes / steps)
        costs.append(OpCost(mean_op, comp / steps, mem / steps, lim / steps,
                            None if est is None else est / steps))
    return Phase("decode", tuple(costs))
