"""The one call behind `perfmodel predict`: resolve every input, predict, say where each came from."""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.collective import engine_comm
from perfmodel.cost.estimate import Estimate, estimator_for
from perfmodel.hardware.gpu import GpuSpec, load_gpu
from perfmodel.cost.precision import Precision, on_gpu
from perfmodel.cost.quant_config import resolve
from perfmodel.cost.parallel import Parallel, parallel_warnings
from perfmodel.cost.phases import Prediction
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload

DEFAULT_GPU = "h100-sxm"


def bundled_model_specs() -> list[tuple[str, ModelSpec]]:
    """Every bundled model's id and spec, read offline (`perfmodel models`)."""
    from perfmodel.model.source import bundled_models

    return [(m, model_spec(load_model_config(m).config)) for m in bundled_models()]


def bundled_gpu_specs() -> dict[str, GpuSpec]:
    """Every bundled GPU profile by name (`perfmodel gpus`)."""
    from perfmodel.hardware.gpu import bundled_names

    return {name: load_gpu(name) for name in bundled_names()}


@dataclass(frozen=True)
class Report:
    """A prediction with the provenance of its inputs and anything the user should be told."""

    prediction: Prediction
    model_id: str
    model_source: str
    estimate: Estimate
    warnings: tuple[str, ...]


def resolve_precision(config: dict, name: str | None, kv_dtype: str | None,
                      act_quant: str | None = None, gpu: GpuSpec | None = None) -> Precision:
    """--precision if given, else the checkpoint's quantization_config, else the model's dtype;
    --act-quant and --kv-dtype over it; then as it runs on `gpu` (fp4 without an FP4 rate)."""
    prec = resolve(config, name, kv_dtype, act_quant)
    return on_gpu(prec, gpu.peak_flops, gpu.name) if gpu is not None else prec


def run_predict(model: str, *, gpu: str = DEFAULT_GPU, precision: str | None = None,
                kv_dtype: str | None = None, batch: int = 1, input_len: int = 1024,
                output_len: int = 256, engine: str | None = None,
                revision: str | None = None, act_quant: str | None = None, tp: int = 1,
                pp: int = 1, ep: int = 1, dp: int = 1) -> Report:
    """Predict one workload of `model` on `gpu` (tp·dp·pp of them, cost/parallel.py); raises
    PerfmodelError on any bad input."""
    workload = Workload(batch, input_len, output_len)
    par = Parallel(tp=tp, pp=pp, ep=ep, dp=dp)
    gpu_spec: GpuSpec = load_gpu(gpu)
    cfg = load_model_config(model, revision=revision)
    spec = model_spec(cfg.config, cfg.where)
    prec = resolve_precision(cfg.config, precision, kv_dtype, act_quant, gpu_spec)
    est = estimator_for(gpu_spec, prec, engine)
    comm = engine_comm(engine, gpu_spec, est.estimator is not None,
                       spec.hidden_size * prec.base_bytes)
    pred = predict(spec, prec, gpu_spec, workload, est.estimator, par, comm)
    warnings = parallel_warnings(gpu_spec, par, est.estimator is not None, engine=engine)
    mem = pred.memory
    if not mem.fits:
        warnings.append(
            f"does not fit: weights {mem.weights_bytes / 1e9:.1f} GB + KV cache "
            f"{mem.kv_bytes / 1e9:.1f} GB > {mem.gpu_bytes / 1e9:.0f} GB on one {gpu_spec.name}"
            + (f" (per GPU of {par.label})" if not par.is_single else "")
            + (f"; at most batch {mem.max_batch} at these lengths" if mem.max_batch else
               "; the weights alone exceed it (shard over GPUs or quantize)"
               if mem.weights_bytes >= mem.gpu_bytes else
               f"; one sequence's KV cache ({mem.kv_bytes_per_sequence / 1e9:.1f} GB) does not "
               "fit beside the weights (shorten --input-len/--output-len or use --kv-dtype fp8)"))
    if spec.max_position_embeddings and workload.final_context > spec.max_position_embeddings:
        warnings.append(f"input + output = {workload.final_context} tokens exceeds the model's "
                        f"max_position_embeddings ({spec.max_position_embeddings})")
    if est.flag:
        warnings.append(est.flag)
    if est.estimator and prec.weight_dtype in ("int4", "mxfp4") and est.engine == "torch-cudagraph":
        warnings.append("the torch-cudagraph engine runs 4-bit weights through tinygemm, fast "
                        "only at M ≤ 8 rows (slow prefill); --engine tuned assumes Marlin-class "
                        "W4A16 kernels")
    return Report(pred, cfg.model_id, cfg.source, est, tuple(warnings))
