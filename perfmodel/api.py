"""The one call behind `perfmodel predict`: resolve every input, predict, say where each came from."""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config
from perfmodel.cost.estimate import Estimate, estimator_for
from perfmodel.hardware.gpu import GpuSpec, load_gpu
from perfmodel.cost.precision import Precision, from_quantization_config, preset, with_kv
from perfmodel.cost.predict import Prediction, predict
from perfmodel.cost.workload import Workload

DEFAULT_GPU = "h100-sxm"


@dataclass(frozen=True)
class Report:
    """A prediction with the provenance of its inputs and anything the user should be told."""

    prediction: Prediction
    model_id: str
    model_source: str
    estimate: Estimate
    warnings: tuple[str, ...]


def resolve_precision(config: dict, name: str | None, kv_dtype: str | None) -> Precision:
    """--precision if given, else the checkpoint's quantization_config, else bf16."""
    if name is not None:
        return with_kv(preset(name), kv_dtype)
    from_config = from_quantization_config(config)
    base = from_config or preset("bf16", source="default (no quantization_config)")
    return with_kv(base, kv_dtype)


def run_predict(model: str, *, gpu: str = DEFAULT_GPU, precision: str | None = None,
                kv_dtype: str | None = None, batch: int = 1, input_len: int = 1024,
                output_len: int = 256, engine: str | None = None,
                revision: str | None = None) -> Report:
    """Predict one workload of `model` on `gpu`; raises PerfmodelError on any bad input."""
    workload = Workload(batch, input_len, output_len)
    gpu_spec: GpuSpec = load_gpu(gpu)
    cfg = load_model_config(model, revision=revision)
    spec = model_spec(cfg.config)
    prec = resolve_precision(cfg.config, precision, kv_dtype)
    est = estimator_for(gpu_spec, prec, engine)
    pred = predict(spec, prec, gpu_spec, workload, est.estimator)
    warnings = []
    mem = pred.memory
    if not mem.fits:
        warnings.append(
            f"does not fit: weights {mem.weights_bytes / 1e9:.1f} GB + KV cache "
            f"{mem.kv_bytes / 1e9:.1f} GB > {mem.gpu_bytes / 1e9:.0f} GB on one {gpu_spec.name}"
            + (f"; at most batch {mem.max_batch} at these lengths" if mem.max_batch else
               "; the weights alone exceed it (shard over GPUs or quantize)"))
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
