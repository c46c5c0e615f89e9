"""Precision as separate axes: weight storage, matmul inputs, compute rate, KV cache, residual.

INT4 and MXFP4 weight-only (W4A16) store 4-bit weights but multiply at the bf16 rate; FP8 and
INT8 are W8A8 and multiply at their own tensor-core rate; NVFP4 (`fp4`) is W4A4 at the FP4 rate
where the GPU has one, else weight-only at the bf16 rate (`on_gpu`). Embeddings, the LM head,
MoE routers and norms stay in the base dtype, as vLLM, AWQ and GPTQ leave them by default. The
KV cache is in the base dtype unless the checkpoint or --kv-dtype says otherwise (vLLM's and
SGLang's `kv_cache_dtype="auto"`). A checkpoint's quantization_config is read in quant_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from perfmodel.errors import WorkloadError

NVFP4_BYTES = 0.5 + 1 / 16  # e2m1 values + one e4m3 scale per 16 (the fp32 tensor scale: nil)
MXFP4_BYTES = 0.5 + 1 / 32  # e2m1 values + one e8m0 scale per 32 (OCP Microscaling v1.0)
DTYPE_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1,
                                 "int4": 0.5, "fp4": NVFP4_BYTES, "mxfp4": MXFP4_BYTES}
PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8")
ACT_SCHEMES = ("static", "dynamic-tensor", "dynamic-token")
INT4_GROUP = 128  # weights per bf16 scale: the AWQ/GPTQ default group size
KV_DEFAULT = "model dtype"  # vLLM and SGLang kv_cache_dtype="auto" (docs/model.md)


@dataclass(frozen=True)
class Precision:
    """How many bytes each kind of tensor takes and which peak the matmuls run at.

    weight_bytes is per weight of a quantized linear layer, scales and zero-points included.
    scope says which weights are quantized: "linear" (every projection in the decoder layers) or
    "experts" (the routed experts only, as gpt-oss's mxfp4 checkpoints do). act_scheme says how
    a W8A8 or W4A4 matmul's input is quantized (static, dynamic-tensor, dynamic-token), None
    where activations stay in the base dtype; act_source and kv_source say where those came
    from; weight_scales names the weights' scale layout; note says anything else the user must
    know (a fallback on this GPU).
    """

    name: str
    weight_dtype: str
    weight_bytes: float
    act_dtype: str
    compute_dtype: str
    kv_dtype: str
    base_dtype: str = "bf16"
    scope: str = "linear"
    source: str = "--precision"
    act_scheme: str | None = None
    act_source: str = ""
    kv_source: str = KV_DEFAULT
    weight_scales: str = ""
    note: str = ""

    @property
    def act_bytes(self) -> float:
        """Bytes per element of a quantized matmul's input (block scales included)."""
        return DTYPE_BYTES[self.act_dtype]

    @property
    def kv_bytes(self) -> float:
        return DTYPE_BYTES[self.kv_dtype]

    @property
    def base_bytes(self) -> float:
        """Bytes per element of the residual stream, outputs and unquantized weights."""
        return DTYPE_BYTES[self.base_dtype]

    @property
    def weight_only(self) -> bool:
        """Quantized weights multiplied at the base rate (W4A16, or a 16-bit model)."""
        return self.act_scheme is None

    @property
    def label(self) -> str:
        """One line: weights, activations, compute, KV cache, each with where it came from."""
        w = f"W {self.weight_dtype}" + (f" {self.weight_scales}" if self.weight_scales else "")
        a = f"A {self.act_dtype}" + (f" {self.act_scheme} ({self.act_source})"
                                     if self.act_scheme else "")
        weight_only = self.weight_only and self.weight_dtype != self.base_dtype
        c = f"compute {self.compute_dtype}" + (" (weight-only)" if weight_only else "")
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} ({w}, {a}, {c}, KV {self.kv_dtype} ({self.kv_source}){note})"


def int4_bytes(group: int, zero_points: bool) -> float:
    """Bytes per weight of group-quantized int4: 4 bits, a bf16 scale and (asymmetric) a 4-bit
    zero-point per group: 0.5 + (2 + 0.5)/group, or 0.5 + 2/group when symmetric."""
    return 0.5 + (2 + (0.5 if zero_points else 0)) / group


def preset(name: str, *, group_size: int = INT4_GROUP, zero_points: bool = False,
           source: str = "--precision", base: str = "bf16") -> Precision:
    """The named precision on a `base` (bf16 or fp16) model: bf16, fp16, fp8 and int8 (W8A8,
    dynamic per-token activations by default), int4 (W4A16, group 128, symmetric), fp4 (NVFP4
    W4A4), mxfp4 (W4A16 with MXFP4 weights)."""
    common = {"base_dtype": base, "kv_dtype": base, "source": source}
    if name in ("bf16", "fp16"):
        return Precision(name, name, 2, name, name, **{**common, "base_dtype": name,
                                                        "kv_dtype": name})
    if name in ("fp8", "int8"):
        return Precision(name, name, 1, name, name, act_scheme="dynamic-token",
                         act_source="default", weight_scales="per-tensor", **common)
    if name == "int4":
        scales = f"group {group_size}" + (" + zero-points" if zero_points else ", symmetric")
        return Precision("int4", "int4", int4_bytes(group_size, zero_points), base, base,
                         weight_scales=scales, **common)
    if name == "fp4":
        return Precision("fp4", "fp4", NVFP4_BYTES, "fp4", "fp4", act_scheme="static",
                         act_source="NVFP4 default: calibrated tensor scale",
                         weight_scales="NVFP4, e4m3 scale per 16", **common)
    if name == "mxfp4":
        return Precision("mxfp4", "mxfp4", MXFP4_BYTES, base, base,
                         weight_scales="MXFP4, e8m0 scale per 32", **common)
    raise WorkloadError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")


def with_kv(precision: Precision, kv_dtype: str | None, source: str = "--kv-dtype"
            ) -> Precision:
    """The precision with its KV cache in kv_dtype (None keeps it as it is)."""
    if kv_dtype is None:
        return precision
    if kv_dtype not in KV_DTYPES:
        raise WorkloadError(f"unknown KV dtype {kv_dtype!r}; use one of {', '.join(KV_DTYPES)}")
    return replace(precision, kv_dtype=kv_dtype, kv_source=source)


def with_act_scheme(precision: Precision, scheme: str | None, source: str = "--act-quant"
                    ) -> Precision:
    """The precision with its activations quantized by `scheme` (None keeps it as it is)."""
    if scheme is None:
        return precision
    if scheme not in ACT_SCHEMES:
        raise WorkloadError(f"unknown --act-quant {scheme!r}; use one of {', '.join(ACT_SCHEMES)}")
    if precision.weight_only:
        raise WorkloadError(f"--act-quant applies only where activations are quantized (fp8, "
                            f"int8, fp4); {precision.name} keeps them in {precision.act_dtype}: "
                            "drop --act-quant or pass --precision fp8")
    if precision.act_dtype == "fp4" and scheme == "dynamic-token":
        raise WorkloadError("fp4 (NVFP4) scales activations per 16 values under one tensor "
                            "scale, not per token; use --act-quant static or dynamic-tensor")
    return replace(precision, act_scheme=scheme, act_source=source)


def on_gpu(precision: Precision, peaks: Mapping[str, float | None], gpu_name: str) -> Precision:
    """The precision as it runs on this GPU: W4A4 fp4 without an FP4 tensor rate runs
    weight-only (fp4 weights dequantized into a bf16 matmul), and says so."""
    if precision.compute_dtype != "fp4" or peaks.get("fp4"):
        return precision
    base = precision.base_dtype
    return replace(precision, act_dtype=base, compute_dtype=base, act_scheme=None,
                   act_source="", note=f"weight-only at {base}: {gpu_name} has no FP4 tensor "
                                       "rate in its profile")
