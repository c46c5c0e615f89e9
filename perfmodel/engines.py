"""Engine presets: which kernels an engine launches for each op, so the estimate can time them.

A matmul or attention op is one library kernel (timed from the profile's tables). A memory-bound
op may be several kernels (PyTorch runs `x * cos + rotate_half(x) * sin` as five) or none (a
tuned engine fuses the residual add into the next norm). Each preset lists, per op name, the
bytes each of its kernels moves, from the op's own tensors; an op not listed is one kernel that
moves exactly the op's minimal bytes. These are facts of the engines' code, cited per preset in
docs/engines.md; none is fitted to a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from perfmodel.errors import WorkloadError
from perfmodel.ops import Op

Kernels = Callable[[Op], tuple[float, ...]]  # an op -> bytes moved by each kernel it launches


def _split(fractions: tuple[float, ...]) -> Kernels:
    """Kernels moving fixed fractions of the op's minimal bytes."""
    return lambda op: tuple(f * op.bytes for f in fractions)


def _per_tensor(per_tensor: tuple[float, ...]) -> Kernels:
    """The same kernel sequence on each tensor in op.shape (element counts, e.g. q and k);
    per_tensor gives each kernel's traffic in units of that tensor's bytes."""
    def kernels(op: Op) -> tuple[float, ...]:
        total = sum(op.shape) or 1
        per_byte = op.bytes / (2 * total)  # read + written once = 2 x tensor bytes
        return tuple(mult * n * per_byte for n in op.shape for mult in per_tensor)
    return kernels


def _moe_gather(op: Op) -> tuple[float, ...]:
    """Sort the M·k (token, expert) pairs by expert (argsort, searchsorted, divide: small
    kernels) and gather each pair's token row (read + write pairs·D)."""
    per_expert, _, width, touched = op.shape
    rows = per_expert * touched * width * 2  # the pairs' bf16 rows of width D
    return (0.0, 0.0, 0.0, 0.0, 2 * rows)


def _moe_scatter(op: Op) -> tuple[float, ...]:
    """Scatter rows back to token order, weight them, sum the k experts of each token."""
    pairs, width = op.shape
    rows = pairs * width * 2  # the pairs' bf16 rows
    return (2 * rows, 2 * rows, op.bytes)  # index_copy_, * weights, sum over k (op's bytes)


@dataclass(frozen=True)
class EnginePreset:
    """What an engine launches beyond one kernel per op, and how it runs 4-bit weights."""

    name: str
    description: str
    kernels: Mapping[str, Kernels] = field(default_factory=dict)
    extra: Mapping[str, Kernels] = field(default_factory=dict)  # kernels beside a matmul op
    int4_table: str = "int4"  # the linear table W4A16 matmuls are timed from


_ROPE_UNFUSED = _per_tensor((2, 1, 2, 2, 3))  # x·cos, -x₂, cat, rot·sin, add
_ROUTER = _split((0.0,) * 5)  # softmax, top-k, sum, divide, cast: tiny kernels

TORCH_CUDAGRAPH = EnginePreset(
    name="torch-cudagraph",
    description="lean PyTorch engine (perfmodel validate): cuBLAS linears with fused QKV and "
                "gate/up, SDPA attention, unfused RMSNorm/RoPE/SiLU·mul/residual adds, whole "
                "step in one CUDA graph",
    kernels={"rope": _ROPE_UNFUSED,
             "qk_norm": _per_tensor((2,)),  # F.rms_norm on q, then on k
             "kv_write": _split((0.5, 0.5)),  # copy_ of k, copy_ of v
             "act": _split((2 / 3, 1.0)), "experts_act": _split((2 / 3, 1.0)),
             "shared_act": _split((2 / 3, 1.0)),  # F.silu(gate), then * up
             "experts_combine": _moe_scatter},
    extra={"router": _ROUTER, "experts_gate_up": _moe_gather},
)

TUNED = EnginePreset(
    name="tuned",
    description="a tuned serving engine (vLLM/SGLang-style kernels): residual add fused into "
                "the next RMSNorm, fused RoPE, fused KV-cache write, fused SiLU·mul, fused MoE "
                "routing; Marlin-class W4A16 kernels at bf16-GEMM efficiency",
    kernels={"attn_residual": _split(()), "mlp_residual": _split(()),
             # fused_add_rms_norm reads x and the residual, writes both: twice the norm's bytes
             "attn_norm": _split((2.0,)), "mlp_norm": _split((2.0,)),
             "qk_norm": _split((1.0,))},
    extra={"router": _split((0.0,))},
    int4_table="bf16",
)

PRESETS = {p.name: p for p in (TORCH_CUDAGRAPH, TUNED)}


def engine_preset(name: str | None) -> EnginePreset:
    if name is None:
        return TORCH_CUDAGRAPH
    if name not in PRESETS:
        raise WorkloadError(f"unknown engine {name!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[name]
