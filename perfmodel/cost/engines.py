"""Engine presets: which kernels an engine launches for each op, so the estimate can time them.

A matmul or attention op is one library kernel, timed from the profile's tables. Memory-bound
work is whatever kernels the engine's code launches: PyTorch runs `x * cos + rotate_half(x) *
sin` as five kernels per tensor, three of them on non-contiguous views; a tuned engine fuses the
residual add into the next norm. Each preset maps an op name to its kernels, each of a kind that
calibrate-gpu measured (docs/engines.md). These are facts of the engines' code, not fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from perfmodel.cost.ops import Op


@dataclass(frozen=True)
class Kernel:
    """One launched kernel: its kind (the profile table that times it) and its size.

    kinds: "elementwise" (contiguous, vectorized), "strided" (reads a non-contiguous view),
    "rmsnorm" (rows × width), "add_rmsnorm" (a residual add fused into an RMSNorm, timed as an
    RMSNorm of twice the width, or as the unfused pair where that is faster), "rope" (the five kernels of unfused RoPE on one tensor, nbytes its
    minimal read + write), "silu_mul" (the two kernels of SiLU(gate)·up on chunk views),
    "routing" (softmax/top-k over `rows` tokens' router logits), "sort" (argsort and
    searchsorted of `rows` token-expert pairs), "tiny" (the launch floor).
    """

    kind: str
    nbytes: float = 0.0
    rows: float = 0.0
    width: float = 0.0


Kernels = Callable[[Op], tuple[Kernel, ...]]


def one(kind: str, fraction: float = 1.0) -> Kernels:
    """A single kernel of `kind` moving `fraction` of the op's minimal bytes."""
    return lambda op: (Kernel(kind, fraction * op.bytes),)


def chain(*parts: tuple[str, float]) -> Kernels:
    """Kernels in sequence, each (kind, fraction of the op's minimal bytes)."""
    return lambda op: tuple(Kernel(kind, f * op.bytes) for kind, f in parts)


def rmsnorm(width_factor: float = 1.0) -> Kernels:
    """An RMSNorm over op.shape = (rows, width); width_factor 2 for the residual add fused
    into the norm (vLLM's fused_add_rms_norm: reads x and the residual, writes both), timed as
    an "add_rmsnorm" kernel over the norm's (rows, width)."""
    kind = "rmsnorm" if width_factor == 1.0 else "add_rmsnorm"
    return lambda op: (Kernel(kind, width_factor * op.bytes, op.shape[0], op.shape[1]),)


def qk_norms(op: Op) -> tuple[Kernel, ...]:
    """Per-head RMSNorm of q, then of k: op.shape = (q rows, k rows, head dim)."""
    q_rows, k_rows, h = op.shape
    per_row = op.bytes / (q_rows + k_rows)
    return (Kernel("rmsnorm", q_rows * per_row, q_rows, h),
            Kernel("rmsnorm", k_rows * per_row, k_rows, h))


def unfused_rope(op: Op) -> tuple[Kernel, ...]:
    """`x * cos + rotate_half(x) * sin` on q and on k (op.shape = their element counts): five
    kernels per tensor, three of them on strided views with broadcast cos/sin."""
    per_elem = op.bytes / sum(op.shape)
    return tuple(Kernel("rope", elems * per_elem) for elems in op.shape)


def torch_routing(op: Op) -> tuple[Kernel, ...]:
    """After the router's linear: softmax in float, top-k, renormalise (op.shape = (M, E, D))."""
    return (Kernel("routing", rows=op.shape[0]),)


def torch_dispatch(op: Op) -> tuple[Kernel, ...]:
    """Before the grouped GEMM: sort the M·k pairs by expert, gather each pair's token row."""
    per_expert, _, width, touched = op.shape
    pairs = per_expert * touched
    return (Kernel("sort", rows=pairs), Kernel("elementwise", 2 * pairs * width * 2))


def torch_combine(op: Op) -> tuple[Kernel, ...]:
    """index_copy_ back to token order, the float routing weights cast to bf16
    (`weights.unsqueeze(-1).to(rows.dtype)`: M·k values, 4 bytes in and 2 out), × those
    weights (broadcast), sum over the k experts."""
    pairs, width = op.shape
    rows = pairs * width * 2
    return (Kernel("elementwise", 2 * rows), Kernel("elementwise", 6 * pairs),
            Kernel("strided", 2 * rows), Kernel("strided", op.bytes))


def attention_output_copy(op: Op) -> tuple[Kernel, ...]:
    """Prefill: SDPA's (B, N, T, H) output made (B, T, N·H) contiguous: one strided copy."""
    if op.phase != "prefill":
        return ()
    b, t, heads, _, h = op.shape[:5]
    return (Kernel("strided", 2 * b * t * heads * h * 2),)


_CONTIGUOUS = one("elementwise")


@dataclass(frozen=True)
class EnginePreset:
    """What an engine launches for each op beyond one library kernel per matmul/attention."""

    name: str
    description: str
    kernels: Mapping[str, Kernels] = field(default_factory=dict)  # memory-bound ops
    extra: Mapping[str, Kernels] = field(default_factory=dict)  # beside a matmul/attention op
    int4_table: str = "int4"  # the linear table W4A16 matmuls are timed from
    fused_quant: bool = True  # W8A8 activations quantized by one fused kernel (act_quant fused)
    banded_prefill: bool = True  # sliding-window prefill skips the tiles outside the window
    # the expert weight dtypes whose memory-bound grouped GEMM streams the touched experts'
    # weights as a dense GEMM of the same bytes does (the serving engines' tuned fused MoE
    # kernels; cost/serving_engines.py); empty: the grouped table alone
    moe_streams_dense: frozenset[str] = frozenset()
    # MLA decode runs one fused kernel (FlashMLA / FA3 / TensorRT-LLM's MLA) that reads the
    # latent cache once: its minimal bytes as one contiguous pass, or its FLOPs at the measured
    # bf16 peak, whichever is longer (cost/serving_engines.py); False: the MLA decode tables
    fused_mla_decode: bool = False

    def kernels_for(self, op: Op) -> tuple[Kernel, ...]:
        """The kernels of a memory-bound op (default: one contiguous kernel at its bytes)."""
        return self.kernels.get(op.name, _CONTIGUOUS)(op)

    def extra_for(self, op: Op) -> tuple[Kernel, ...]:
        make = self.extra.get(op.name)
        return make(op) if make else ()


_SILU_MUL = one("silu_mul")  # SiLU(gate view), then · up view

TORCH_CUDAGRAPH = EnginePreset(
    name="torch-cudagraph",
    description="lean PyTorch engine (perfmodel validate): cuBLAS linears with fused QKV and "
                "gate/up, SDPA attention, unfused RMSNorm/RoPE/SiLU·mul/residual adds, whole "
                "step in one CUDA graph",
    kernels={"attn_norm": rmsnorm(), "mlp_norm": rmsnorm(), "final_norm": rmsnorm(),
             "post_attn_norm": rmsnorm(), "post_mlp_norm": rmsnorm(),
             "qk_norm": qk_norms, "rope": unfused_rope,
             "kv_write": chain(("elementwise", 0.5), ("elementwise", 0.5)),
             "act": _SILU_MUL, "experts_act": _SILU_MUL, "shared_act": _SILU_MUL,
             "experts_combine": torch_combine},
    extra={"router": torch_routing, "experts_gate_up": torch_dispatch,
           "attention": attention_output_copy},
    fused_quant=False,
    banded_prefill=False,  # SDPA with a dense banded mask computes the whole causal square
)

TUNED = EnginePreset(
    name="tuned",
    description="a tuned serving engine (vLLM/SGLang-style kernels): residual add fused into "
                "the next RMSNorm, fused RoPE, fused KV-cache write, fused SiLU·mul, fused MoE "
                "routing and dispatch; Marlin-class W4A16 kernels at bf16-GEMM efficiency",
    kernels={"attn_residual": lambda op: (), "mlp_residual": lambda op: (),
             "attn_norm": rmsnorm(2.0), "mlp_norm": rmsnorm(2.0), "final_norm": rmsnorm(2.0),
             "post_attn_norm": rmsnorm(), "post_mlp_norm": rmsnorm(), "qk_norm": qk_norms},
    extra={"router": lambda op: (Kernel("tiny"),),
           "experts_gate_up": lambda op: (Kernel("tiny"),)},
    int4_table="bf16",
)
