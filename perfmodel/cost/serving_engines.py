"""Kernel presets of the real serving engines: what vLLM, SGLang and TensorRT-LLM launch per layer.

Each is an EnginePreset (cost/engines.py) built from facts of the engine's code, named with the
file and release they come from. Kernels calibrate-gpu cannot time one by one (a fused kernel
that exists only inside an engine) are timed as the single contiguous memory pass they are: a
fused kernel reads its inputs and writes its outputs once, so its bytes are the op's minimal
bytes and its time comes from the profile's elementwise table. That is a stated assumption
(docs/serving.md), not a fit.

vLLM (v0.10–v0.12, vllm/model_executor/layers/):
- layernorm.py RMSNorm.forward_cuda: fused_add_rms_norm (residual add + norm, one kernel).
- rotary_embedding: one `rotary_embedding` op over q and k together.
- attention/backends/flash_attn.py: reshape_and_cache_flash writes K and V into the paged cache
  (one kernel), FlashAttention-3 varlen on Hopper for prefill and decode.
- activation.py SiluAndMul: `silu_and_mul`, one kernel.
- quantization/fp8.py (W8A8 dynamic per-token): `scaled_fp8_quant`, one kernel before each fp8
  GEMM, then CUTLASS fp8 (cutlass_scaled_mm); W4A16 through Marlin (gptq_marlin.py).
- fused_moe/fused_moe.py: topk_softmax, moe_align_block_size, one Triton grouped GEMM per
  projection, moe_sum.
SGLang (v0.5, python/sglang/srt/layers/): layernorm.py fused_add_rmsnorm (sgl-kernel), rotary
  embedding fused over q/k, FlashInfer/FA3 attention with one set_kv_buffer write,
  activation.py silu_and_mul, fp8_kernel.py per-token fp8 quant (one kernel), Triton fused MoE.
TensorRT-LLM (v1.0, tensorrt_llm/_torch/): modules/rms_norm.py fused residual + RMSNorm;
  attention_backend/trtllm.py: the attention op applies RoPE and appends K/V to the paged cache
  inside its own kernels (no separate RoPE or cache-write launch); modules/swiglu fused
  SiLU·mul; fp8 activations quantized in one kernel; CUTLASS/cuBLASLt fp8 GEMMs.

Fused MoE in TensorRT-LLM: the routed experts' GEMMs run in CUTLASS's fused MoE runner
(tensorrt_llm/_torch/custom_ops/torch_custom_ops.py, MoERunner wrapping
torch.classes.trtllm.FusedMoeRunner), a TunableRunner whose tactic the AutoTuner profiles per
power-of-two token bucket at warm-up. Where such a GEMM is memory-bound (decode), it is timed as
the better of the profile's grouped-GEMM table (a generic grouped GEMM, weak at a few rows per
expert) and one dense GEMM over the touched experts' columns at the dense table's efficiency:
a per-shape tuned kernel streams the weights as a tuned dense GEMM streams them
(EnginePreset.moe_streams_dense). A stated assumption like the fp8 one below
(docs/serving.md), not a fit. vLLM's and SGLang's Triton fused_moe is tuned the same way, per
shape and device, offline: both ship one config per (experts, width, device, dtype, block)
(vllm/model_executor/layers/fused_moe/configs/, python/sglang/srt/layers/moe/fused_moe_triton/
configs/triton_3_x_x/, e.g. "E=257,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,
block_shape=[128, 128].json" for DeepSeek-V3 at TP8, SGLang v0.5), so their bf16, fp16, fp8
and int8 experts stream the same way; their 4-bit experts (MXFP4, GPTQ/AWQ int4) run Marlin or
triton_kernels' matmul_ogs on Hopper instead and keep the grouped table.

MLA decode (DeepSeek-V2/V3): all three run one fused kernel per layer that reads the compressed
latent cache once and keeps the scores on chip: vLLM's FlashMLA backend
(vllm/v1/attention/backends/mla/flashmla.py, v0.10–v0.12), SGLang's FlashAttention-3 backend,
its default on Hopper, DeepSeek included (docs/backend/attention_backend.md, v0.5), TensorRT-LLM's
own MLA generation kernels (tensorrt_llm/_torch/attention_backend/trtllm.py, v1.0). None can be
timed by calibrate-gpu, whose MLA table times the torch engine's absorbed-bmm path (the latent
read twice, the scores through HBM); so, as every fused kernel here, it is one contiguous pass
over its minimal bytes, or its FLOPs at the measured bf16 matmul peak where those take longer
(EnginePreset.fused_mla_decode). A stated assumption, not a fit; FlashMLA's own figures
(deepseek-ai/FlashMLA README, 2025: up to 3000 GB/s memory-bound and 660 TFLOPS compute-bound on
H800 SXM5) are about those two rates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from perfmodel.cost.engines import EnginePreset, Kernel, one, qk_norms, rmsnorm
from perfmodel.cost.ops import GROUPED, MATMUL, Op
from perfmodel.cost.roofline import cost
from perfmodel.hardware.gpu import GpuSpec


def _none(op: Op) -> tuple[Kernel, ...]:
    return ()


def _tiny(op: Op) -> tuple[Kernel, ...]:
    return (Kernel("tiny"),)


def fp8_quant(op: Op) -> tuple[Kernel, ...]:
    """One dynamic per-token quant kernel before a W8A8 fp8 GEMM: reads the (M, K) input in
    bf16, writes it in fp8 plus M scales: 3·M·K bytes. None for other dtypes."""
    if op.dtype != "fp8":
        return ()
    m, _, k = op.shape
    return (Kernel("elementwise", 3 * m * k),)


_CONTIGUOUS = one("elementwise")
_FUSED_NORMS = {"attn_residual": _none, "mlp_residual": _none, "attn_norm": rmsnorm(2.0),
                "mlp_norm": rmsnorm(2.0), "final_norm": rmsnorm(), "qk_norm": qk_norms}
_QUANTIZED = ("qkv", "o_proj", "gate_up", "down", "q_up", "q_down", "kv_down", "kv_up",
              "shared_gate_up", "shared_down")
_MOE = {"router": _tiny, "experts_gate_up": lambda op: (Kernel("tiny"), Kernel("tiny"))}


def _preset(name: str, description: str, kernels: dict, extra: dict) -> EnginePreset:
    return EnginePreset(name=name, description=description,
                        kernels={**_FUSED_NORMS, "rope": _CONTIGUOUS, "kv_write": _CONTIGUOUS,
                                 "act": _CONTIGUOUS, "experts_act": _CONTIGUOUS,
                                 "shared_act": _CONTIGUOUS, "experts_combine": _CONTIGUOUS,
                                 **kernels},
                        extra={**{n: fp8_quant for n in _QUANTIZED}, **_MOE, **extra},
                        int4_table="bf16")


VLLM = _preset("vllm", "vLLM V1: fused add+RMSNorm, one rotary_embedding over q/k, "
               "reshape_and_cache_flash, FlashAttention-3, silu_and_mul, scaled_fp8_quant + "
               "CUTLASS fp8, Marlin W4A16, Triton fused MoE", {}, {})
SGLANG = _preset("sglang", "SGLang: sgl-kernel fused add+RMSNorm, fused RoPE, FlashInfer/FA3 "
                 "with one KV write, silu_and_mul, per-token fp8 quant, Triton fused MoE", {}, {})
TRTLLM = _preset("trtllm", "TensorRT-LLM (PyTorch backend): fused add+RMSNorm, RoPE and paged "
                 "KV append inside the attention op, fused SwiGLU, fp8 quant kernel, CUTLASS "
                 "fp8, CUTLASS fused MoE with autotuned tactics",
                 {"rope": _none, "kv_write": _none}, {})
# whose memory-bound expert GEMMs stream as a dense GEMM (module docstring): TensorRT-LLM's
# CUTLASS MoE for every weight format; vLLM's and SGLang's tuned Triton fused_moe for all but the
# 4-bit formats, which take Marlin / triton_kernels instead
EVERY_EXPERT_DTYPE = frozenset({"bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "fp4"})
TRITON_FUSED_MOE = EVERY_EXPERT_DTYPE - {"int4", "mxfp4", "fp4"}
TRTLLM = replace(TRTLLM, moe_streams_dense=EVERY_EXPERT_DTYPE, fused_mla_decode=True)
VLLM = replace(VLLM, moe_streams_dense=TRITON_FUSED_MOE, fused_mla_decode=True)
SGLANG = replace(SGLANG, moe_streams_dense=TRITON_FUSED_MOE, fused_mla_decode=True)

SERVING_PRESETS = {p.name: p for p in (VLLM, SGLANG, TRTLLM)}


def fp8_at_bf16_efficiency(estimator: Callable[[Op], float | None],
                           gpu: GpuSpec) -> Callable[[Op], float | None]:
    """The serving engines' fp8 GEMMs (CUTLASS cutlass_scaled_mm in vLLM and SGLang, TensorRT-LLM's
    own fp8 GEMMs) are tuned per shape; where a GEMM is memory-bound (small M), and the profile's
    fp8 table (timed through torch._scaled_mm) reaches about half the bandwidth, they stream
    weights as efficiently as cuBLAS streams bf16. Assumption (docs/serving.md): a memory-bound
    fp8 GEMM takes the better of its own table's time and its fp8 roofline at the bf16 table's
    efficiency on the same (M, K, N); the quantization kernel before it is added either way.
    Compute-bound fp8 GEMMs keep the fp8 table.

    Routed experts in fp8 (a grouped GEMM): the profile's fp8 grouped table times
    torch._scaled_grouped_mm, which on Hopper runs at 150-500 TFLOP/s, below torch's own bf16
    grouped GEMM (600-740 TFLOP/s, h200-measured); the engines run per-shape tuned fp8 MoE
    kernels instead (Triton fused_moe fp8_w8a8 configs in vLLM and SGLang, TensorRT-LLM's
    autotuned CUTLASS MoE runner; see the module docstring), which do the bf16 kernel's work on
    half the weight bytes at twice the tensor-core peak. Assumption (docs/serving.md): an fp8
    grouped GEMM takes no longer than the bf16 grouped GEMM of the same shape, plus its own
    activation quantization; the better of that and its fp8 table."""
    def seconds(op: Op) -> float | None:
        est = estimator(op)
        if est is not None and op.kind == GROUPED and op.dtype == "fp8":
            return _grouped_fp8(op, est)
        if est is None or op.kind != MATMUL or op.dtype != "fp8":
            return est
        bare = replace(op, name="gemm")  # the same GEMM without the engine's extra kernels
        roof = cost(bare, gpu)
        if roof.bound != "memory":
            return est
        extra = est - (estimator(bare) or 0.0)
        bf16 = replace(bare, dtype="bf16", weight_dtype="bf16",
                       bytes=op.bytes + op.shape[1] * op.shape[2] + op.shape[0] * op.shape[2])
        base = estimator(bf16)
        if not base:
            return est
        return min(est, roof.limit_s * base / cost(bf16, gpu).limit_s + extra)

    def _grouped_fp8(op: Op, est: float) -> float:
        bare = replace(op, name="gemm")  # the GEMM without its quantization kernel
        extra = est - (estimator(bare) or 0.0)
        per_expert, n, k, touched = op.shape
        bf16 = replace(bare, dtype="bf16", weight_dtype="bf16",
                       bytes=op.bytes + touched * (n * k + per_expert * k))
        base = estimator(bf16)
        return est if not base else min(est, base + extra)

    return seconds
