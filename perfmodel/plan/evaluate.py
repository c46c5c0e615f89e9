"""One grid point -> one flat row of metrics, with every input resolved once per process.

A sweep evaluates thousands of points that share a handful of configs, GPU profiles and
estimators; resolving those (reading YAML and JSON, building the kernel-table interpolators)
costs ~30 times a prediction, so `resolve` caches them per process (perfmodel/bench.py does the
same). A point that cannot run (does not fit, no such precision on that GPU, an unknown engine)
becomes a row whose `error` says why, never an exception.

Every row has the headline columns ttft_s, tpot_s, output_tok_s, tok_s_per_gpu (output tokens/s
over the GPUs the deployment takes) and tok_s_per_user (1 / TPOT, as aiconfigurator plots it).
For 'predict' they come from the estimate where the GPU profile supports one, else from the
limit (`basis` says which); for 'serve', from the simulation's means.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from perfmodel.cost.estimate import Estimate
from perfmodel.cost.precision import Precision
from perfmodel.cost.phases import Memory, Prediction, memory
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload
from perfmodel.errors import PerfmodelError
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.plan.grid import PREDICT, Point

HEADLINE = ("ttft_s", "tpot_s", "output_tok_s", "tok_s_per_gpu", "tok_s_per_user")


@dataclass(frozen=True)
class Resolved:
    """The inputs of a prediction that do not depend on the workload."""

    spec: ModelSpec
    precision: Precision
    gpu: GpuSpec
    estimate: Estimate


def resolve(model: str, gpu: str, precision: str | None, kv_dtype: str | None,
            engine: str | None) -> Resolved:
    """Config, GPU profile, precision and estimator, read once per process and reused (a
    failure too: an fp8 point on a GPU without an fp8 rate fails as fast as it can)."""
    got = _resolve(model, gpu, precision, kv_dtype, engine)
    if isinstance(got, PerfmodelError):
        raise got
    return got


@functools.lru_cache(maxsize=256)
def _resolve(model: str, gpu: str, precision: str | None, kv_dtype: str | None,
             engine: str | None) -> Resolved | PerfmodelError:
    """Taken from one run_predict, so a sweep resolves its inputs as `perfmodel predict` does."""
    from perfmodel.api import run_predict

    try:
        report = run_predict(model, gpu=gpu, precision=precision, kv_dtype=kv_dtype, batch=1,
                             input_len=1, output_len=1, engine=engine)
    except PerfmodelError as exc:
        return exc
    pred = report.prediction
    return Resolved(pred.spec, pred.precision, pred.gpu, report.estimate)


@functools.cache
def parallel_predict_supported() -> bool:
    """Whether this perfmodel's run_predict takes --tp/--ep/--dp/--pp."""
    from perfmodel.api import run_predict

    return {"tp", "ep", "dp", "pp"} <= set(inspect.signature(run_predict).parameters)


def prediction(point: Point, engine: str | None = None) -> Prediction:
    """The static-batch prediction of point (batch = its load); raises PerfmodelError."""
    workload = Workload(point.load, point.isl, point.osl)
    if not point.parallel:
        r = resolve(point.model, point.gpu, point.precision, point.kv_dtype, engine)
        return predict(r.spec, r.precision, r.gpu, workload, r.estimate.estimator)
    if not parallel_predict_supported():
        raise PerfmodelError("--tp/--ep/--dp/--pp need a perfmodel whose predict shards over "
                             "GPUs; sweep one GPU (--tp 1) with this version")
    if "parallel" in inspect.signature(predict).parameters:  # the cached path, as for one GPU
        from perfmodel.cost.parallel import Parallel

        r = resolve(point.model, point.gpu, point.precision, point.kv_dtype, engine)
        par = Parallel(tp=point.tp, pp=point.pp, ep=point.ep, dp=point.dp)
        return predict(r.spec, r.precision, r.gpu, workload, r.estimate.estimator, parallel=par)
    from perfmodel.api import run_predict

    return run_predict(point.model, gpu=point.gpu, precision=point.precision,
                       kv_dtype=point.kv_dtype, batch=point.load, input_len=point.isl,
                       output_len=point.osl, engine=engine, tp=point.tp, ep=point.ep,
                       dp=point.dp, pp=point.pp).prediction


def does_not_fit(mem: Memory) -> str | None:
    """Why the weights and KV cache exceed the GPU's memory, or None."""
    if mem.fits:
        return None
    what = f"at most batch {mem.max_batch}" if mem.max_batch else "the weights alone exceed it"
    return (f"does not fit: weights {mem.weights_bytes / 1e9:.1f} GB + KV "
            f"{mem.kv_bytes / 1e9:.1f} GB > {mem.gpu_bytes / 1e9:.0f} GB per GPU ({what})")


def _memory_row(mem: Memory) -> dict[str, Any]:
    return {"weights_bytes": mem.weights_bytes, "kv_bytes": mem.kv_bytes, "fits": mem.fits,
            "max_batch": mem.max_batch}


def _predict_row(point: Point) -> dict[str, Any]:
    if not point.parallel:  # a point that does not fit costs no prediction
        r = resolve(point.model, point.gpu, point.precision, point.kv_dtype, point.engine)
        mem = memory(r.spec, r.precision, r.gpu, Workload(point.load, point.isl, point.osl))
        if not mem.fits:
            return {"precision": r.precision.name, "kv_dtype": r.precision.kv_dtype,
                    **_memory_row(mem), "error": does_not_fit(mem)}
    pred = prediction(point, point.engine)
    lim, est = pred.limit, pred.estimate
    row: dict[str, Any] = {"precision": pred.precision.name, "kv_dtype": pred.precision.kv_dtype}
    row.update({f"limit_{k}": v for k, v in lim.items()})
    row.update({f"estimate_{k}": (est or {}).get(k) for k in lim})
    row.update(_memory_row(pred.memory))
    error = does_not_fit(pred.memory)
    if error:
        return {**row, "error": error}
    best, basis = (est, "estimate") if est is not None else (lim, "limit")
    itl = best["itl_s"]
    output = best["throughput_tok_s"]
    return {**row, "basis": basis, "ttft_s": best["ttft_s"], "tpot_s": itl,
            "output_tok_s": output, "tok_s_per_gpu": output / point.gpus if output else None,
            "tok_s_per_user": 1.0 / itl if itl else None}


def _serve_row(point: Point) -> dict[str, Any]:
    try:
        from perfmodel.serve import run_serve
    except ImportError:
        raise PerfmodelError("this perfmodel has no serving simulation; sweep with --batch "
                             "(static batches) instead of --concurrency") from None
    fleet = {"replicas": point.replicas, "router": point.router or "round-robin"} \
        if point.replicas != 1 else {}
    load = {"concurrency": point.load} if point.request_rate is None else \
        {"request_rate": point.request_rate}
    report = run_serve(point.model, gpu=point.gpu, engine=point.engine or "vllm",
                       **load, isl=point.isl, osl=point.osl,
                       num_requests=point.requests,
                       precision=point.precision, kv_dtype=point.kv_dtype, tp=point.tp,
                       ep=point.ep, dp=point.dp, pp=point.pp,
                       max_num_batched_tokens=point.max_num_batched_tokens, **fleet,
                       **({"disagg": point.disagg} if point.disagg else {}),
                       **({} if point.disagg else {"keep_trace": False}),
                       **point.serve_options)
    r = report.result
    row: dict[str, Any] = {"basis": "serve", "precision_label": r.precision, **r.columns()}
    row.update(limit_ttft_s=r.limit.ttft_s.mean, limit_tpot_s=r.limit.tpot_s.mean)
    row.update(ttft_s=r.ttft_s.mean, tpot_s=r.tpot_s.mean,
               output_tok_s=r.throughput.output_tok_s,
               tok_s_per_gpu=r.throughput.output_tok_s_per_gpu,
               tok_s_per_user=r.throughput.output_tok_s_per_user)
    return row


def evaluate(point: Point) -> dict[str, Any]:
    """The row of one point: its columns, its metrics, and `error` (None when it ran)."""
    row: dict[str, Any] = point.columns()
    row.update({key: None for key in HEADLINE})
    row.update(basis=None, error=None)
    try:
        row.update(_predict_row(point) if point.method == PREDICT else _serve_row(point))
    except PerfmodelError as exc:
        row["error"] = str(exc)
    return row
