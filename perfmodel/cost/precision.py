"""Precision as separate axes: weight storage, matmul inputs, compute rate, KV cache, residual.

INT4 weight-only (W4A16) stores 4-bit weights but multiplies at the bf16 rate; FP8 and INT8 are
W8A8 and multiply at their own tensor-core rate. Embeddings, the LM head, MoE routers and norms
stay in the base dtype, as vLLM, AWQ and GPTQ leave them by default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from perfmodel.errors import ConfigError, WorkloadError

DTYPE_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1,
                                 "int4": 0.5, "mxfp4": 0.5}
PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8")
INT4_GROUP = 128  # weights per bf16 scale: the AWQ/GPTQ default group size


@dataclass(frozen=True)
class Precision:
    """How many bytes each kind of tensor takes and which peak the matmuls run at.

    weight_bytes is per weight of a quantized linear layer, scales included. scope says which
    weights are quantized: "linear" (every projection in the decoder layers) or "experts" (the
    routed experts only, as gpt-oss's mxfp4 checkpoints do).
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

    @property
    def act_bytes(self) -> float:
        """Bytes per element of a quantized matmul's input."""
        return DTYPE_BYTES[self.act_dtype]

    @property
    def kv_bytes(self) -> float:
        return DTYPE_BYTES[self.kv_dtype]

    @property
    def base_bytes(self) -> float:
        """Bytes per element of the residual stream, outputs and unquantized weights."""
        return DTYPE_BYTES[self.base_dtype]

    @property
    def label(self) -> str:
        kv = "" if self.kv_dtype == self.act_dtype else f", KV {self.kv_dtype}"
        return f"{self.name} (W {self.weight_dtype}, A {self.act_dtype}, " \
               f"compute {self.compute_dtype}{kv})"


def preset(name: str, *, group_size: int = INT4_GROUP, source: str = "--precision") -> Precision:
    """The named precision: bf16, fp16, fp8 (W8A8), int8 (W8A8), int4 (W4A16)."""
    if name in ("bf16", "fp16"):
        return Precision(name, name, 2, name, name, name, base_dtype=name, source=source)
    if name in ("fp8", "int8"):
        return Precision(name, name, 1, name, name, name, source=source)
    if name == "int4":
        return Precision("int4", "int4", 0.5 + 2 / group_size, "bf16", "bf16", "bf16",
                         source=source)
    raise WorkloadError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")


def with_kv(precision: Precision, kv_dtype: str | None) -> Precision:
    """The precision with its KV cache in kv_dtype (None keeps the activation dtype)."""
    if kv_dtype is None:
        return precision
    if kv_dtype not in KV_DTYPES:
        raise WorkloadError(f"unknown KV dtype {kv_dtype!r}; use one of {', '.join(KV_DTYPES)}")
    return replace(precision, kv_dtype=kv_dtype)


def from_quantization_config(cfg: dict[str, Any]) -> Precision | None:
    """The precision a checkpoint's quantization_config implies, or None if it has none."""
    quant = cfg.get("quantization_config")
    if not isinstance(quant, dict):
        return None
    method = str(quant.get("quant_method", "")).lower()
    if method == "fp8":
        block = quant.get("weight_block_size") or [128, 128]
        scales = 4 / (block[0] * block[1])
        return replace(preset("fp8"), weight_bytes=1 + scales,
                       source=f"quantization_config: fp8, block {block[0]}x{block[1]}")
    if method in ("awq", "gptq"):
        bits = quant.get("bits", quant.get("w_bit"))
        group = quant.get("group_size", quant.get("q_group_size", INT4_GROUP))
        if bits != 4:
            raise ConfigError(f"quantization_config {method} with {bits} bits is not supported; "
                              "pass --precision to choose one")
        group = group if isinstance(group, int) and group > 0 else INT4_GROUP
        return preset("int4", group_size=group,
                      source=f"quantization_config: {method}, 4-bit, group {group}")
    if method == "mxfp4":
        return Precision("mxfp4", "mxfp4", 0.5 + 1 / 32, "bf16", "bf16", "bf16", scope="experts",
                         source="quantization_config: mxfp4 experts (4 bits + one 8-bit scale "
                                "per 32)")
    if method == "compressed-tensors":
        return _compressed_tensors(quant)
    raise ConfigError(f"quantization_config quant_method {method!r} is not supported; "
                      f"pass --precision ({', '.join(PRECISIONS)}) to override")


def _compressed_tensors(quant: dict[str, Any]) -> Precision:
    groups = quant.get("config_groups") or {}
    if not groups:
        raise ConfigError("quantization_config compressed-tensors has no config_groups; "
                          "pass --precision to override")
    scheme = next(iter(groups.values()))
    weights = scheme.get("weights") or {}
    acts = scheme.get("input_activations")
    bits, kind = weights.get("num_bits"), weights.get("type")
    source = f"quantization_config: compressed-tensors, W{bits} {kind}"
    if bits == 8 and acts and acts.get("num_bits") == 8:
        return preset("fp8" if kind == "float" else "int8", source=source + " A8")
    if bits == 4 and not acts:
        group = weights.get("group_size") or INT4_GROUP
        return preset("int4", group_size=group, source=source + f", group {group}")
    raise ConfigError(f"{source} is not supported; pass --precision to override")
