"""Measuring real forwards on a CUDA GPU, for `perfmodel validate`: the torch-cudagraph engine.

The torch-cudagraph engine preset is a lean PyTorch decoder with random weights, built from a
ModelSpec and a Precision. An estimate of this preset counts exactly these kernels:

- Linears are cuBLAS with fused QKV and fused gate/up weights. bf16/fp16: `x @ W.t()`
  (`F.linear`). fp8 W8A8: dynamic per-tensor activation quantization (amax, scale, cast to e4m3),
  then `torch._scaled_mm` (bf16 out). int8 W8A8: dynamic per-token quantization (amax, scale,
  round, cast), `torch._int_mm` (rows padded to 32 when M ≤ 16), then rescale. int4 W4A16:
  tinygemm `aten._weight_int4pack_mm`, group 128. Embedding, LM head, MoE router and norms stay
  bf16; the KV cache is bf16 at every precision.
- Each layer runs these regions, each in `torch.profiler.record_function(NAME)`:
  `attn_norm` (F.rms_norm), `qkv`, `qk_norm` (per-head RMSNorm of Q and K, Qwen3/Gemma 3 only),
  `rope` (unfused rotate-half RoPE on Q and K), `kv_write` (copy new K and V into a preallocated
  cache), `attention` (F.scaled_dot_product_attention, enable_gqa=True; prefill causal over the
  new tokens, decode one query against the cache's first C tokens; sliding-window layers see at
  most `window` tokens: the last `window` cached ones in decode, a banded causal mask in a prefill
  longer than the window), `o_proj`, `attn_residual`, `mlp_norm`, then dense `gate_up`, `act`
  (SiLU(gate)·up), `down`, or MoE `router` (one bf16 linear of E columns, E + 1 with a shared-
  expert gate, then softmax/top-k/renormalise as the family does), `experts_gate_up` (sort the
  token-expert pairs by expert, gather their rows, `torch._grouped_mm`), `experts_act`,
  `experts_down` (grouped GEMM), `shared_gate_up`, `shared_act`, `shared_down` (shared experts
  and their sigmoid gate), `experts_combine` (scatter rows back, weight, sum the k experts, add
  the shared output), then `mlp_residual`. Once per forward: `embed`, then `final_norm` and
  `lm_head` on the last token of each sequence only (B rows, in prefill as in decode).
- Prefill: B sequences of T tokens into empty caches, K/V written, logits of the last token of
  each sequence (TTFT without tokenizer or scheduler). Decode: one new token for each of B
  sequences whose cache holds C tokens including the new one (one ITL step).
- The whole prefill or decode step is one `torch.cuda.CUDAGraph`, replayed with CUDA events and
  the L2 flushed before each replay: the median of at least 10 replays (3 to 9 beyond 0.5 s).
  Per-op kernel seconds come from one more eager forward under torch.profiler, each kernel
  charged to the innermost region that launched it.

Not modelled: DeepSeek's MLA (an error), gpt-oss attention sinks, expert biases and clamped
SwiGLU, Gemma's embedding scaling, extra norms and soft-capping, RoPE scaling variants. Routed
experts run in bf16 or fp8 only (no grouped int8/int4 kernel in torch).

torch is imported only by this package's submodules; importing this package does not import it.
"""

from __future__ import annotations

from typing import Any

from perfmodel.validate.measurement import Measurement, op_names

__all__ = ["Measurement", "op_names", "build_engine", "measure_prefill", "measure_decode",
           "sweep"]

_LAZY = {"build_engine": "perfmodel.validate.engine",
         "measure_prefill": "perfmodel.validate.timing",
         "measure_decode": "perfmodel.validate.timing", "sweep": "perfmodel.validate.timing"}


def __getattr__(name: str) -> Any:
    """build_engine, measure_prefill, measure_decode, sweep: imported (with torch) when used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'perfmodel.validate' has no attribute {name!r}")
