"""The engine's matmuls at each precision, on random weights: y = x·Wᵀ with W of shape (N, K).

- bf16/fp16 (and fp32, for CPU tests): cuBLAS through `F.linear`.
- fp8 W8A8: the activation quantized per scheme (`perfmodel.torchblocks.quant.quantize`; default
  dynamic per-tensor: amax, scale, cast to e4m3), `torch._scaled_mm` with per-tensor scales, or
  per-row activation scales where the scheme is per token, bf16 out.
- int8 W8A8: the activation quantized per scheme (default dynamic per token: amax, scale, round,
  cast), `torch._int_mm` (rows padded to 32 when M ≤ 16), then rescale by both scales.
- A weight kind "fp8/static" (dtype/scheme, as the act_quant tables name them) picks the
  scheme: static (one kernel: x / s, clamp, cast, with a fixed scale s = 8 / max, so |x| > 8
  saturates), dynamic-tensor, dynamic-token, or fused (one Triton per-token kernel).
- int4 W4A16: tinygemm `aten._weight_int4pack_mm`, group 128, bf16 activations.
Routed experts: tokens sorted by expert run through `torch._grouped_mm` (bf16) or
`torch._scaled_grouped_mm` (fp8, the per-tensor activation scale repeated per row); a per-expert
loop stands in where neither runs, and then the forward cannot be captured in a CUDA graph.
Weights are torch.randn scaled by 1/sqrt(K) (or random codes with matching scales), never zeros.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from perfmodel.torchblocks.quant import quantize
from perfmodel.errors import WorkloadError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
STATIC_RANGE = 8.0  # |x| a static scale covers: activations here are RMS-normed or O(1) products
SCHEMES = ("static", "dynamic-tensor", "dynamic-token", "fused")
INT4_GROUP = 128
INT4_INNER_K_TILES = 8


def dtype_of(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise WorkloadError(f"the engine keeps activations in bf16, fp16 or fp32, not {name!r}")
    return DTYPES[name]


def randn(shape: tuple[int, ...], fan_in: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Random N(0, 1/fan_in) weights, made directly in dtype."""
    return torch.randn(shape, dtype=dtype, device=device).mul_(1.0 / math.sqrt(fan_in))


class DenseLinear:
    """bf16/fp16/fp32: cuBLAS via F.linear (x @ W.t(), bias fused when present)."""

    def __init__(self, n: int, k: int, *, bias: bool, dtype: torch.dtype, device: str):
        self.weight = randn((n, k), k, dtype, device)
        self.bias = randn((n,), n, dtype, device) if bias else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Fp8Linear:
    """W8A8 fp8: x quantized per scheme, torch._scaled_mm, bf16 out."""

    def __init__(self, n: int, k: int, *, bias: bool, dtype: torch.dtype, device: str,
                 scheme: str = "dynamic-tensor"):
        _require(k % 16 == 0 and n % 16 == 0, f"fp8 needs K and N divisible by 16, got {k}x{n}")
        self.weight = torch.randn((n, k), dtype=dtype, device=device).to(FP8)
        self.scale = torch.tensor(1.0 / math.sqrt(k), dtype=torch.float32, device=device)
        self.row_scale = self.scale.expand(1, n).contiguous()  # for per-token x scales
        self.bias = randn((n,), n, dtype, device) if bias else None
        self.k, self.scheme = k, scheme
        self.static = torch.tensor(STATIC_RANGE / FP8_MAX, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xq, x_scale = quantize(x.reshape(-1, self.k), "fp8", self.scheme, self.static)
        w_scale = self.row_scale if x_scale.dim() else self.scale
        y = torch._scaled_mm(xq, self.weight.t(), scale_a=x_scale, scale_b=w_scale,
                             bias=self.bias, out_dtype=x.dtype)
        return y.reshape(*x.shape[:-1], -1)


class Int8Linear:
    """W8A8 int8: x quantized per scheme, torch._int_mm (M padded to 32 when ≤ 16), rescale."""

    def __init__(self, n: int, k: int, *, bias: bool, dtype: torch.dtype, device: str,
                 scheme: str = "dynamic-token"):
        _require(k % 8 == 0 and n % 8 == 0, f"int8 needs K and N divisible by 8, got {k}x{n}")
        self.weight = torch.randint(-127, 128, (n, k), dtype=torch.int8, device=device)
        self.scale = torch.rand(n, device=device).add_(0.5).mul_(1.0 / (73.0 * math.sqrt(k)))
        self.bias = randn((n,), n, dtype, device) if bias else None
        self.k, self.scheme = k, scheme
        self.static = torch.tensor(STATIC_RANGE / 127.0, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.k)
        m = x2.shape[0]
        xq, x_scale = quantize(x2, "int8", self.scheme, self.static)
        if m <= 16:
            xq = F.pad(xq, (0, 0, 0, 32 - m))
        y = torch._int_mm(xq, self.weight.t())[:m]
        y = (y * x_scale * self.scale).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], -1)


class Int4Linear:
    """W4A16 int4: tinygemm aten._weight_int4pack_mm, group 128, bf16 activations."""

    def __init__(self, n: int, k: int, *, bias: bool, dtype: torch.dtype, device: str):
        _require(k % INT4_GROUP == 0 and n % 8 == 0,
                 f"int4 (tinygemm) needs K divisible by {INT4_GROUP} and N by 8, got {k}x{n}")
        codes = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device=device)
        self.weight = torch.ops.aten._convert_weight_to_int4pack(codes, INT4_INNER_K_TILES)
        scales = torch.rand((k // INT4_GROUP, n), device=device).add_(0.5) / (4.6 * math.sqrt(k))
        zeros = torch.randn((k // INT4_GROUP, n), device=device) * 0.01
        self.scales_and_zeros = torch.stack([scales, zeros], -1).to(dtype).contiguous()
        self.bias = randn((n,), n, dtype, device) if bias else None
        self.k = k

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int4pack_mm(x.reshape(-1, self.k), self.weight, INT4_GROUP,
                                               self.scales_and_zeros)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], -1)


LINEARS = {"bf16": DenseLinear, "fp16": DenseLinear, "fp32": DenseLinear, "fp8": Fp8Linear,
           "int8": Int8Linear, "int4": Int4Linear}


def weight_kind(weight_dtype: str, act_scheme: str | None) -> str:
    """The kind make_linear takes for a precision: "fp8/static" where a W8A8 precision names
    its activation scheme, the plain dtype otherwise."""
    if weight_dtype in ("fp8", "int8") and act_scheme:
        return f"{weight_dtype}/{act_scheme}"
    return weight_dtype


def make_linear(weight_dtype: str, n: int, k: int, *, bias: bool, dtype: torch.dtype,
                device: str):
    """The linear layer for weights stored as weight_dtype, "fp8/static"-style kinds naming
    the activation quantization scheme of fp8/int8 (checked to run on device first)."""
    weight_dtype, _, scheme = weight_dtype.partition("/")
    if weight_dtype not in LINEARS or (scheme and weight_dtype not in ("fp8", "int8")) \
            or (scheme and scheme not in SCHEMES):
        raise WorkloadError(f"the torch-cudagraph engine runs bf16, fp16, fp8, int8 and int4 "
                            f"linears (fp8 and int8 with an activation scheme of "
                            f"{', '.join(SCHEMES)}), not {weight_dtype!r}; pass --precision")
    probe(weight_dtype, device)
    if scheme:
        probe(f"{weight_dtype}/{scheme}", device)
        return LINEARS[weight_dtype](n, k, bias=bias, dtype=dtype, device=device, scheme=scheme)
    return LINEARS[weight_dtype](n, k, bias=bias, dtype=dtype, device=device)


class GroupedExperts:
    """E routed experts' (N, K) weights; multiplies rows already sorted by expert.

    offs holds each expert's end row (int32, cumulative); rows of one expert share its weight,
    and experts that received no rows are not read.
    """

    def __init__(self, weight_dtype: str, experts: int, n: int, k: int, *, dtype: torch.dtype,
                 device: str):
        weight_dtype = weight_dtype.partition("/")[0]  # experts quantize per tensor, dynamic
        self.fp8 = weight_dtype == "fp8"
        if self.fp8:
            probe("fp8_grouped", device)
            self.weight = torch.randn((experts, n, k), dtype=dtype, device=device).to(FP8)
            self.scale = torch.full((experts, n), 1.0 / math.sqrt(k), device=device)
            self.looped = False
        elif weight_dtype in DTYPES:
            self.weight = randn((experts, n, k), k, dtype, device)
            self.looped = not _grouped_runs(dtype, device)
        else:
            raise WorkloadError(f"routed experts in {weight_dtype} are not supported by the "
                                "torch-cudagraph engine (no grouped kernel); use bf16 or fp8")

    def __call__(self, xs: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
        w = self.weight.transpose(-2, -1)  # (E, K, N), column-major as the kernels want
        if self.fp8:
            x_scale = (xs.abs().amax().float() / FP8_MAX).clamp(min=1e-12)
            xq = (xs / x_scale).to(FP8)
            rows = x_scale.expand(xs.shape[0]).contiguous()
            return torch._scaled_grouped_mm(xq, w, rows, self.scale, offs=offs,
                                            out_dtype=xs.dtype)
        if self.looped:
            return _looped_mm(xs, w, offs)
        return torch._grouped_mm(xs, w, offs=offs)


def _looped_mm(xs: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """Per-expert loop: reads offs on the host, so it cannot be graph-captured."""
    out = xs.new_empty(xs.shape[0], w.shape[-1])
    start = 0
    for expert, end in enumerate(offs.tolist()):
        if end > start:
            out[start:end] = xs[start:end] @ w[expert]
        start = end
    return out


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise WorkloadError(message + "; this model cannot run at that precision in the engine")


@functools.cache
def _grouped_runs(dtype: torch.dtype, device: str) -> bool:
    try:
        xs = torch.randn(32, 64, dtype=dtype, device=device)
        w = torch.randn(4, 32, 64, dtype=dtype, device=device).transpose(-2, -1)
        offs = torch.tensor([8, 8, 24, 32], dtype=torch.int32, device=device)
        out = torch._grouped_mm(xs, w, offs=offs)
        return bool(torch.allclose(out[8:24].float(), (xs[8:24] @ w[2]).float(),
                                   rtol=2e-2, atol=2e-2))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


@functools.cache
def probe(kind: str, device: str) -> None:
    """Run a tiny instance of the kernel behind `kind` once; a clear error if it does not run."""
    if kind in DTYPES:
        return
    if not str(device).startswith("cuda"):
        raise WorkloadError(f"{kind} matmuls need a CUDA GPU; on {device} use bf16 or fp32")
    try:
        if kind.partition("/")[0] in ("fp8", "int8", "int4"):
            dtype, _, scheme = kind.partition("/")
            extra = {"scheme": scheme} if scheme else {}
            LINEARS[dtype](128, 128, bias=False, dtype=torch.bfloat16, device=device, **extra)(
                torch.randn(3, 128, dtype=torch.bfloat16, device=device))
        elif kind == "fp8_grouped":
            experts = GroupedExperts.__new__(GroupedExperts)
            experts.fp8, experts.looped = True, False
            experts.weight = torch.randn(4, 32, 64, device=device).to(FP8)
            experts.scale = torch.ones(4, 32, device=device)
            offs = torch.tensor([16, 16, 32, 48], dtype=torch.int32, device=device)
            experts(torch.randn(48, 64, dtype=torch.bfloat16, device=device), offs)
        torch.cuda.synchronize(device)
    except (RuntimeError, AttributeError, NotImplementedError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WorkloadError(f"{kind} kernels do not run on this device with torch "
                            f"{torch.__version__} ({first}); use bf16") from error
