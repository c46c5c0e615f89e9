"""Serving on many GPUs: how tp, ep, dp and pp map onto the one-GPU simulation.

The model of a deployment of tp·dp·pp GPUs (docs/serving.md, "Many GPUs"):
- Each step is one GPU's share of the work: the TP/EP-sharded forward plus its collectives
  (cost/parallel_predict.sharded_forward: all-reduces after attention and MLP, EP dispatch and
  combine, the logits all-gather, PP sends), so a TP group runs one scheduler.
- Attention DP: dp ranks each schedule their own share of the requests (a load balancer
  hands request i to rank i mod dp); each rank runs the same step model, its MoE layers
  including the EP all-to-all over all tp·dp GPUs, every rank assumed as loaded as the one
  simulated.
- PP: pp micro-batches in flight (vLLM's batch queue, TensorRT-LLM's micro-batches), each its
  own scheduler whose step is the forward through every stage (pp − 1 sends included); the
  stages pipeline the micro-batches, so they do not slow one another. The pp schedulers share
  each GPU's KV pool, a stage's pool holding its own layers' KV. Fewer requests than
  schedulers leave stages idle: the bubble.
So dp·pp independent schedulers of ⌈C/(dp·pp)⌉ clients (or rate R/(dp·pp)) each; the simulated
one is the fullest (request 0's). Throughput adds over the schedulers; per GPU it divides by
tp·dp·pp. Ignored: load imbalance between ranks and experts, DP ranks padding their MoE steps
to the busiest rank, the first stage's embedding beside the last stage's LM head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from perfmodel.cost.ops import forward_ops
from perfmodel.cost.parallel import Parallel, shard
from perfmodel.cost.parallel_predict import parallel_memory, sharded_forward
from perfmodel.cost.precision import Precision
from perfmodel.cost.phases import memory
from perfmodel.cost.workload import Workload
from perfmodel.errors import WorkloadError
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.serve.requests import Arrivals


@dataclass(frozen=True)
class Layout:
    """One scheduler's view of the deployment: the model one GPU runs, its ops, the model whose
    KV one GPU holds, the weights on the fullest GPU, and how many schedulers run side by side."""

    par: Parallel
    local: ModelSpec
    forward: Callable
    kv_spec: ModelSpec
    weights_bytes: float

    @property
    def schedulers(self) -> int:
        return self.par.dp * self.par.pp


def layout(spec: ModelSpec, precision: Precision, gpu: GpuSpec, par: Parallel) -> Layout:
    """The sharded model and ops of one GPU (the model itself on one GPU: today's numbers)."""
    if par.is_single:
        weights = memory(spec, precision, gpu, Workload(1, 1, 1)).weights_bytes
        return Layout(par, spec, forward_ops, spec, weights)
    local, forward = sharded_forward(spec, par)
    kv_spec = shard(spec, par, stage=0) if par.pp > 1 else local  # stage 0 has the most layers
    weights = parallel_memory(spec, precision, gpu, Workload(1, 1, 1), par).weights_bytes
    return Layout(par, local, forward, kv_spec, weights)


def rank_arrivals(arrivals: Arrivals, schedulers: int) -> Arrivals:
    """The requests of the fullest scheduler: every n-th request from the first, ⌈C/n⌉ clients
    (closed loop) or rate R/n (open loop; round-robin thins the Poisson stream)."""
    if schedulers == 1:
        return arrivals
    conc = arrivals.concurrency
    return Arrivals(arrivals.requests[::schedulers],
                    None if conc is None else math.ceil(conc / schedulers),
                    None if arrivals.rate is None else arrivals.rate / schedulers)


def scale_throughput(doc: dict[str, Any], full: Arrivals, rank: Arrivals,
                     gpus: int, schedulers: int) -> dict[str, Any]:
    """The deployment's throughput from one scheduler's: × C/⌈C/n⌉ closed loop (every client
    as fast as the fullest scheduler's), × n open loop (R/n each, R = inf included); per GPU
    over all tp·dp·pp GPUs."""
    t = doc["throughput"]
    if rank is full:
        scale = 1.0
    elif full.concurrency is not None:
        scale = full.concurrency / rank.concurrency
    else:
        scale = float(schedulers)
    out = {k: (None if t[k] is None else t[k] * scale) for k in ("requests_s", "output_tok_s")}
    per_gpu = None if out["output_tok_s"] is None else out["output_tok_s"] / gpus
    return {**doc, "throughput": {**t, **out, "output_tok_s_per_gpu": per_gpu}}


def kv_share(kv, schedulers_per_gpu: int):
    """The pp micro-batch schedulers split each GPU's KV blocks evenly."""
    if schedulers_per_gpu == 1:
        return kv
    if kv.blocks < schedulers_per_gpu:
        raise WorkloadError(f"{kv.blocks} KV blocks per GPU cannot be shared by {schedulers_per_gpu}"
                            " pipeline micro-batches; lower --pp or raise --tp")
    return replace(kv, blocks=kv.blocks // schedulers_per_gpu)
