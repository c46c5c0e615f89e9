"""One prediction on many GPUs: the sharded forward of one GPU plus its collectives.

Each GPU runs shard(spec) (cost/parallel.py) on its own sequences: ⌈B/dp⌉ per attention-DP
rank. The op table is one GPU's, with every layer a token passes (all pipeline stages) and the
collectives of that forward, each costed over the link (cost/collective.py).

Pipeline parallelism (pp stages, every stage as fast as the average one):
- TTFT: the prefill of the rank's sequences through all stages plus pp−1 sends: the stages
  add, no micro-batching shortens one prefill.
- ITL: the batch splits into μ = min(pp, B) micro-batches of ⌈B/μ⌉ sequences in flight; a
  stage spends t(⌈B/μ⌉)/pp on one, and a micro-batch's next token can start only after its
  last one left the last stage, so a round takes max(μ, pp)·t/pp = t(⌈B/μ⌉) (μ ≤ pp): the
  ITL is the forward of one micro-batch through all stages. When B < pp, pp − B stages idle
  at any moment: the bubble, visible as throughput B/ITL below pp·⌈B/μ⌉/ITL.
Memory is per GPU: the fuller of the first stage (embedding) and the last (LM head).
"""

from __future__ import annotations

import math
from dataclasses import replace

from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.ops import forward_ops
from perfmodel.cost.parallel import Parallel, comm_ops, local_batch, shard
from perfmodel.cost.precision import Precision
from perfmodel.cost.phases import (Comm, Estimator, Memory, Phase, Prediction, _costed,
                                   _mean_decode, memory)
from perfmodel.cost.workload import Workload


def sharded_forward(spec: ModelSpec, par: Parallel):
    """forward_ops' signature, for one GPU: its shard's ops plus the collectives."""
    local = shard(spec, par)

    def forward(_spec, precision: Precision, phase: str, batch: int, tokens: int, context: int):
        return forward_ops(local, precision, phase, batch, tokens, context) + \
            comm_ops(spec, par, precision, phase, batch, tokens)

    return local, forward


def micro_batch(batch: int, par: Parallel) -> int:
    """Sequences of one decode micro-batch on one GPU: ⌈b/μ⌉, b = ⌈B/dp⌉, μ = min(pp, b)."""
    b = local_batch(batch, par)
    return math.ceil(b / min(par.pp, b))


def parallel_step(spec: ModelSpec, precision: Precision, gpu: GpuSpec, phase: str, batch: int,
                  tokens: int, estimator: Estimator | None, par: Parallel) -> Phase:
    """One forward as `perfmodel validate --tp` measures it: B sequences (per DP rank)."""
    _, forward = sharded_forward(spec, par)
    new = tokens if phase == "prefill" else 1
    ops = forward(spec, precision, phase, local_batch(batch, par), new, tokens)
    return Phase(phase, tuple(_costed(op, gpu, estimator) for op in ops))


def parallel_memory(spec: ModelSpec, precision: Precision, gpu: GpuSpec, workload: Workload,
                    par: Parallel) -> Memory:
    """Weights and KV cache on the fullest GPU (first or last stage), at ⌈B/dp⌉ sequences."""
    local_w = replace(workload, batch=local_batch(workload.batch, par))
    if par.pp == 1:
        return memory(shard(spec, par), precision, gpu, local_w)
    table = math.ceil(spec.vocab_size / par.tp) * spec.hidden_size * precision.base_bytes
    first = memory(shard(spec, par, stage=0), precision, gpu, local_w)
    last = memory(shard(spec, par, stage=par.pp - 1), precision, gpu, local_w)
    # memory() counts the embedding and an untied LM head; the first stage holds no head, the
    # last no embedding (a tied head is the last stage's own copy of the table)
    untied = not spec.tie_word_embeddings
    first = replace(first, weights_bytes=first.weights_bytes - (table if untied else 0))
    last = replace(last, weights_bytes=last.weights_bytes - (table if untied else 0))
    return max(first, last, key=lambda m: m.weights_bytes + m.kv_bytes)


def parallel_predict(spec: ModelSpec, precision: Precision, gpu: GpuSpec, workload: Workload,
                     estimator: Estimator | None, par: Parallel,
                     comm: Comm | None = None) -> Prediction:
    """TTFT, ITL and throughput of workload served by par (module docstring), per-GPU memory;
    collectives by comm (a serving engine's all-reduce) when given, else NCCL."""
    local, forward = sharded_forward(spec, par)
    rank = local_batch(workload.batch, par)
    prefill_ops = forward(spec, precision, "prefill", rank, workload.input_len,
                          workload.input_len)
    fused = comm.fused_norms(prefill_ops) if comm else ()
    prefill = Phase("prefill", tuple(_costed(op, gpu, estimator, comm, fused)
                                     for op in prefill_ops))
    decode = None
    if workload.decode_steps:
        micro = replace(workload, batch=micro_batch(workload.batch, par))
        decode = _mean_decode(local, precision, gpu, micro, estimator, forward, comm)
    return Prediction(spec, precision, gpu, workload, prefill, decode,
                      parallel_memory(spec, precision, gpu, workload, par), par)
