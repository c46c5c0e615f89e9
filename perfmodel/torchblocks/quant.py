"""Activation quantization kernels, per dtype and scheme (calibrate/quant.py times them).

A W8A8 linear quantizes its bf16 input x (rows, width) before the GEMM. The schemes, as the
torch-cudagraph engine (`perfmodel/torchblocks/linear.py`) runs them:

- static: a fixed per-tensor scale s from calibration: q = cast(clamp(x / s, ±max)) in ONE
  kernel (a small Triton kernel on CUDA, as vLLM's static_scaled_fp8_quant; plain PyTorch
  would need three). Without Triton (a CPU) the same arithmetic runs as PyTorch ops.
- dynamic-tensor: s = amax(|x|) / max over the tensor, then x / s, cast (PyTorch ops:
  abs, amax, float, divide, clamp, divide, cast).
- dynamic-token: s = amax(|x|) / max per row (rows, 1), then x / s, cast (PyTorch ops).
- fused: per-token dynamic quantization in ONE Triton kernel (amax of a row, scale, cast), which
  is what tuned engines launch (vLLM's dynamic_per_token_scaled_fp8_quant). CUDA only.

max is 448 for fp8 e4m3 and 127 for int8 (int8 rounds half away from zero in the Triton
kernels, half to even in PyTorch's; the cost is the same). torch and triton are imported inside
functions.
"""

from __future__ import annotations

import functools
from typing import Any

FP8_MAX, INT8_MAX = 448.0, 127.0
BLOCK = 1024  # elements per program of the static kernel, per loop step of the per-token one


def qmax(dtype: str) -> float:
    return {"fp8": FP8_MAX, "int8": INT8_MAX}[dtype]


def torch_dtype(dtype: str) -> Any:
    import torch

    return {"fp8": torch.float8_e4m3fn, "int8": torch.int8}[dtype]


def quantize(x: Any, dtype: str, scheme: str, scale: Any = None) -> tuple[Any, Any]:
    """(q, scale) of x (rows, width) bf16: q in dtype, scale fp32 (0-d, or (rows, 1) per token).

    static needs `scale` (a 0-d fp32 tensor); the dynamic schemes compute theirs.
    """
    if scheme == "static":
        return _static(x, dtype, scale), scale
    if scheme == "fused":
        return _fused_token(x, dtype)
    if scheme not in ("dynamic-tensor", "dynamic-token"):
        raise ValueError(f"unknown activation quantization scheme {scheme!r}")
    amax = x.abs().amax(-1, keepdim=True) if scheme == "dynamic-token" else x.abs().amax()
    s = (amax.float() / qmax(dtype)).clamp(min=1e-12)
    q = x / s
    if dtype == "int8":
        q = q.round()
    return q.to(torch_dtype(dtype)), s


def _static(x: Any, dtype: str, scale: Any) -> Any:
    kernels = _triton_kernels() if x.is_cuda else None
    if kernels is None:
        q = (x / scale).clamp(-qmax(dtype), qmax(dtype))
        return (q.round() if dtype == "int8" else q).to(torch_dtype(dtype))
    import torch

    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch_dtype(dtype), device=x.device)
    grid = (-(-x.numel() // BLOCK),)
    kernels[0][grid](x, out, scale, x.numel(), QMAX=qmax(dtype), INT=dtype == "int8",
                     BLOCK=BLOCK)
    return out


def _fused_token(x: Any, dtype: str) -> tuple[Any, Any]:
    import torch

    kernels = _triton_kernels() if x.is_cuda else None
    if kernels is None:
        raise RuntimeError("the fused quantization kernel needs Triton on a CUDA GPU")
    x = x.contiguous()
    rows, width = x.numel() // x.shape[-1], x.shape[-1]
    out = torch.empty(x.shape, dtype=torch_dtype(dtype), device=x.device)
    scale = torch.empty(*x.shape[:-1], 1, dtype=torch.float32, device=x.device)
    kernels[1][(rows,)](x, out, scale, width, QMAX=qmax(dtype), INT=dtype == "int8",
                        BLOCK=min(BLOCK * 4, _next_pow2(width)), num_warps=4)
    return out, scale


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@functools.cache
def _triton_kernels() -> tuple[Any, Any] | None:
    """(static kernel, per-token kernel), compiled on first launch; None without Triton."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def static_quant(x_ptr, out_ptr, scale_ptr, n, QMAX: tl.constexpr, INT: tl.constexpr,
                     BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        q = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32) / tl.load(scale_ptr)
        q = tl.minimum(tl.maximum(q, -QMAX), QMAX)
        if INT:
            q = tl.where(q >= 0, q + 0.5, q - 0.5)  # the cast truncates: round half away
        tl.store(out_ptr + offs, q.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def token_quant(x_ptr, out_ptr, scale_ptr, width, QMAX: tl.constexpr, INT: tl.constexpr,
                    BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        amax = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, width, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            x = tl.load(x_ptr + row * width + offs, mask=offs < width, other=0.0)
            amax = tl.maximum(amax, tl.abs(x.to(tl.float32)))
        scale = tl.maximum(tl.max(amax, axis=0) / QMAX, 1e-12)
        tl.store(scale_ptr + row, scale)
        for start in range(0, width, BLOCK):  # the row again, from L1/L2
            offs = start + tl.arange(0, BLOCK)
            x = tl.load(x_ptr + row * width + offs, mask=offs < width, other=0.0)
            q = tl.minimum(tl.maximum(x.to(tl.float32) / scale, -QMAX), QMAX)
            if INT:
                q = tl.where(q >= 0, q + 0.5, q - 0.5)
            tl.store(out_ptr + row * width + offs, q.to(out_ptr.dtype.element_ty),
                     mask=offs < width)

    return static_quant, token_quant
