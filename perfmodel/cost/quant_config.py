"""A checkpoint's quantization_config (config.json) read into a Precision, and --precision,
--act-quant and --kv-dtype applied over it.

Formats read, each as vLLM reads it (vllm/model_executor/layers/quantization/, main 2025-26):
`fp8` (fp8.py: `activation_scheme`, `weight_block_size`), `awq` / `gptq` (bits, group size,
zero-points), `mxfp4` (gpt-oss experts), `compressed-tensors` (config_groups' weights and
input_activations; `kv_cache_scheme`), `modelopt` (modelopt.py: `quant_algo` FP8,
FP8_PER_CHANNEL_PER_TOKEN, NVFP4, W4A16_NVFP4; `kv_cache_quant_algo` or `kv_cache_scheme`, flat
in config.json or nested under "quantization" as in hf_quant_config.json).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from perfmodel.cost.precision import (INT4_GROUP, PRECISIONS, Precision, preset,
                                      with_act_scheme, with_kv)
from perfmodel.errors import ConfigError
from perfmodel.model.fields import served_dtype

_FIX = f"pass --precision ({', '.join(PRECISIONS)}) to override"


def base_dtype(cfg: dict[str, Any]) -> str:
    """The model's own dtype: fp16 for a float16 checkpoint, else bf16 (float32 checkpoints are
    served in bf16, as vLLM's dtype="auto" does)."""
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}
    for where in (cfg, text):
        kind = served_dtype(where)
        if kind is not None:
            return kind
    return "bf16"


def resolve(cfg: dict[str, Any], name: str | None, kv_dtype: str | None,
            act_quant: str | None) -> Precision:
    """--precision if given, else the checkpoint's quantization_config, else the model's dtype;
    then --act-quant and --kv-dtype over it. The checkpoint's KV scheme applies only to its own
    precision (a --precision names another checkpoint)."""
    base = base_dtype(cfg)
    if name is not None:
        prec = preset(name, base=base)
    else:
        prec = from_quantization_config(cfg, base=base) or \
            preset(base, source="default (no quantization_config)")
        kv = kv_from_quantization_config(cfg.get("quantization_config"))
        prec = with_kv(prec, *kv) if kv else prec
    return with_kv(with_act_scheme(prec, act_quant), kv_dtype)


def from_quantization_config(cfg: dict[str, Any], base: str = "bf16") -> Precision | None:
    """The precision a checkpoint's quantization_config implies, or None if it has none."""
    quant = cfg.get("quantization_config")
    if quant is None:
        return None
    if not isinstance(quant, dict):
        raise ConfigError(f"quantization_config must be an object with a quant_method, not "
                          f"{quant!r}; fix config.json or {_FIX}")
    method = str(quant.get("quant_method", "")).lower()
    if method == "fp8":
        return _fp8(quant, base)
    if method in ("awq", "gptq"):
        return _int4(quant, method, base)
    if method == "mxfp4":
        return replace(preset("mxfp4", base=base), scope="experts",
                       source="quantization_config: mxfp4 experts")
    if method == "compressed-tensors":
        return _compressed_tensors(quant, base)
    if method.startswith("modelopt"):
        return _modelopt(quant, base)
    raise ConfigError(f"quantization_config quant_method {method!r} is not supported; {_FIX}")


def kv_from_quantization_config(quant: Any) -> tuple[str, str] | None:
    """(KV dtype, source) a checkpoint declares, as vLLM's `resolve_kv_cache_dtype_string`
    (vllm/utils/torch_utils.py, main at commit 959009b4) reads it: `kv_cache_scheme` (8-bit
    float -> fp8) or modelopt's `kv_cache_quant_algo` ("FP8"); None when it declares none."""
    if not isinstance(quant, dict):
        return None
    inner = quant.get("quantization") if isinstance(quant.get("quantization"), dict) else {}
    scheme = inner.get("kv_cache_scheme") or quant.get("kv_cache_scheme") \
        or inner.get("kv_cache_quant_algo") or quant.get("kv_cache_quant_algo")
    if not scheme:
        return None
    if isinstance(scheme, dict) and scheme.get("num_bits") == 8 and \
            scheme.get("type") in ("float", "int"):
        dtype = "fp8" if scheme["type"] == "float" else "int8"
        return dtype, f"quantization_config kv_cache_scheme: {scheme['num_bits']}-bit " \
                      f"{scheme['type']}"
    if isinstance(scheme, str) and scheme.upper() == "FP8":
        return "fp8", "quantization_config kv_cache_quant_algo: FP8"
    raise ConfigError(f"quantization_config KV cache scheme {scheme!r} is not supported; pass "
                      "--kv-dtype (bf16, fp16, fp8, int8)")


def _fp8(quant: dict[str, Any], base: str) -> Precision:
    """vLLM fp8.py: weights per-tensor, or per block with weight_block_size; activations static
    per-tensor, or dynamic per-token (per 1 x block[0] group with blocks) on CUTLASS GPUs."""
    block = quant.get("weight_block_size")
    scheme = str(quant.get("activation_scheme", "dynamic")).lower()
    if scheme not in ("static", "dynamic"):
        raise ConfigError(f"quantization_config fp8 activation_scheme {scheme!r} is not "
                          f"static or dynamic; {_FIX}")
    prec = preset("fp8", base=base)
    act = "static" if scheme == "static" else "dynamic-token"
    act_source = f"quantization_config activation_scheme: {scheme}"
    if block is None:
        return replace(prec, source="quantization_config: fp8, per-tensor weight scales",
                       act_scheme=act, act_source=act_source)
    if not (isinstance(block, list) and len(block) == 2 and all(
            isinstance(b, int) and b > 0 for b in block)):
        raise ConfigError(f"quantization_config weight_block_size must be two positive whole "
                          f"numbers, not {block!r}; fix config.json or {_FIX}")
    return replace(prec, weight_bytes=1 + 4 / (block[0] * block[1]), act_scheme=act,
                   act_source=act_source + (f", per-token groups of {block[0]}"
                                            if act != "static" else ""),
                   weight_scales=f"block {block[0]}x{block[1]}",
                   source=f"quantization_config: fp8, block {block[0]}x{block[1]}")


def _int4(quant: dict[str, Any], method: str, base: str) -> Precision:
    """AWQ (`zero_point`, default true) and GPTQ (`sym`, default true: no zero-points)."""
    bits = quant.get("bits", quant.get("w_bit"))
    group = quant.get("group_size", quant.get("q_group_size", INT4_GROUP))
    if bits != 4:
        raise ConfigError(f"quantization_config {method} with {bits} bits is not supported; "
                          f"{_FIX}")
    group = _group_size(group, method)
    zeros = bool(quant.get("zero_point", True)) if method == "awq" \
        else not bool(quant.get("sym", True))
    what = "zero-points" if zeros else "symmetric"
    return preset("int4", group_size=group, zero_points=zeros, base=base,
                  source=f"quantization_config: {method}, 4-bit, group {group}, {what}")


def _group_size(group: Any, method: str) -> int:
    """An int4 group size: a whole number ≥ 1 (a typo of 0 or -8 was read as 128). GPTQ's -1
    (one scale per output channel) is refused too: the per-group byte count has no width for
    it; pass --precision int4 to cost it at group 128."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ConfigError(f"quantization_config {method} group_size is {group!r}, not a whole "
                          f"number ≥ 1; fix config.json or {_FIX}")
    return group


def _compressed_tensors(quant: dict[str, Any], base: str) -> Precision:
    """The first config group: W8A8 fp8/int8, W4A16 int, NVFP4 (W4A4 or W4A16)."""
    groups = quant.get("config_groups") or {}
    if not isinstance(groups, dict) or not groups:
        raise ConfigError(f"quantization_config compressed-tensors has no config_groups; {_FIX}")
    scheme = next(iter(groups.values()))
    weights = scheme.get("weights") or {}
    acts = scheme.get("input_activations")
    bits, kind = weights.get("num_bits"), weights.get("type")
    fmt = scheme.get("format") or quant.get("format")
    source = f"quantization_config: compressed-tensors, W{bits} {kind}"
    if bits == 8 and acts and acts.get("num_bits") == 8:
        prec = preset("fp8" if kind == "float" else "int8", base=base,
                      source=source + " A8")
        return replace(prec, weight_scales=_ct_scales(weights), **_ct_acts(acts))
    if bits == 4 and kind == "float" and weights.get("group_size") == 16:
        prec = preset("fp4", base=base, source=f"{source}, {fmt or 'nvfp4'}")
        if not acts:
            return _weight_only(prec)
        return replace(prec, **_ct_acts(acts))
    if bits == 4 and kind == "float" and weights.get("group_size") == 32 and not acts:
        return replace(preset("mxfp4", base=base), source=f"{source}, {fmt or 'mxfp4'}")
    if bits == 4 and kind in ("int", None) and not acts:
        group = weights.get("group_size")
        group = _group_size(INT4_GROUP if group is None else group, "compressed-tensors")
        zeros = weights.get("symmetric") is False
        return preset("int4", group_size=group, zero_points=zeros, base=base,
                      source=source + f", group {group}")
    raise ConfigError(f"{source} is not supported; {_FIX}")


def _ct_scales(weights: dict[str, Any]) -> str:
    strategy = weights.get("strategy") or "tensor"
    block = weights.get("block_structure")
    return f"block {block[0]}x{block[1]}" if strategy == "block" and block else \
        f"per-{strategy}"


def _ct_acts(acts: dict[str, Any]) -> dict[str, str]:
    """input_activations -> act_scheme: dynamic false (or "local": NVFP4's calibrated tensor
    scale, block scales computed in the kernel) is static; dynamic true per token or per
    tensor."""
    dynamic, strategy = acts.get("dynamic"), acts.get("strategy") or "tensor"
    where = f"quantization_config input_activations dynamic: {str(dynamic).lower()}, " \
            f"strategy {strategy}"
    if dynamic is True:
        return {"act_scheme": "dynamic-token" if strategy in ("token", "group")
                else "dynamic-tensor", "act_source": where}
    return {"act_scheme": "static", "act_source": where}


def _weight_only(prec: Precision) -> Precision:
    """NVFP4 weights with 16-bit activations (W4A16): the bf16 rate on every GPU."""
    return replace(prec, act_dtype=prec.base_dtype, compute_dtype=prec.base_dtype,
                   act_scheme=None, act_source="")


def _modelopt(quant: dict[str, Any], base: str) -> Precision:
    """NVIDIA ModelOpt: quant_algo FP8 (per-tensor, static activations),
    FP8_PER_CHANNEL_PER_TOKEN, NVFP4 (W4A4, static tensor scale), W4A16_NVFP4."""
    inner = quant.get("quantization") if isinstance(quant.get("quantization"), dict) else quant
    algo = str(inner.get("quant_algo", "")).upper()
    source = f"quantization_config: modelopt {algo}"
    act_source = f"modelopt {algo}: calibrated input_scale"
    if algo == "FP8":
        return replace(preset("fp8", base=base, source=source), act_scheme="static",
                       act_source=act_source)
    if algo == "FP8_PER_CHANNEL_PER_TOKEN":
        return replace(preset("fp8", base=base, source=source), weight_scales="per-channel",
                       act_scheme="dynamic-token", act_source=f"modelopt {algo}")
    if algo == "NVFP4":
        group = inner.get("group_size", 16)
        if group != 16:
            raise ConfigError(f"{source} with group_size {group} is not NVFP4's 16; {_FIX}")
        return replace(preset("fp4", base=base, source=source), act_source=act_source)
    if algo == "W4A16_NVFP4":
        return _weight_only(preset("fp4", base=base, source=source))
    raise ConfigError(f"{source or 'quantization_config: modelopt'} is not supported; {_FIX}")

