"""One prediction: TTFT, ITL, throughput and memory of a workload, from ops and their costs
(cost/phases.py; on many GPUs cost/parallel_predict.py)."""

from __future__ import annotations

from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.ops import forward_ops
from perfmodel.cost.parallel_predict import parallel_predict, parallel_step
from perfmodel.cost.phases import (Comm, Estimator, Phase, Prediction, _costed, _mean_decode,
                                   memory)
from perfmodel.cost.precision import Precision
from perfmodel.cost.workload import Workload


def step(spec: ModelSpec, precision: Precision, gpu: GpuSpec, phase: str, batch: int,
         tokens: int, estimator: Estimator | None = None, parallel=None) -> Phase:
    """One forward: a prefill of B sequences of T = tokens, or one decode step at context C =
    tokens (the new token included). This is what `perfmodel validate` measures."""
    if parallel is not None and not parallel.is_single:
        return parallel_step(spec, precision, gpu, phase, batch, tokens, estimator, parallel)
    new = tokens if phase == "prefill" else 1
    ops = forward_ops(spec, precision, phase, batch, new, tokens)
    return Phase(phase, tuple(_costed(op, gpu, estimator) for op in ops))


def predict(spec: ModelSpec, precision: Precision, gpu: GpuSpec, workload: Workload,
            estimator: Estimator | None = None, parallel=None,
            comm: Comm | None = None) -> Prediction:
    """Cost the prefill (TTFT) and the mean decode step (ITL) of workload on gpu (on each GPU
    of `parallel`, cost/parallel_predict.py, when one is given; its collectives by comm when
    given, else NCCL)."""
    if parallel is not None and not parallel.is_single:
        return parallel_predict(spec, precision, gpu, workload, estimator, parallel, comm)
    prefill_ops = forward_ops(spec, precision, "prefill", workload.batch, workload.input_len,
                              workload.input_len)
    prefill = Phase("prefill", tuple(_costed(op, gpu, estimator) for op in prefill_ops))
    decode = _mean_decode(spec, precision, gpu, workload, estimator) \
        if workload.decode_steps else None
    return Prediction(spec, precision, gpu, workload, prefill, decode,
                      memory(spec, precision, gpu, workload))
