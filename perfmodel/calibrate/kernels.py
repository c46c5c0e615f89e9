"""The kernels calibrate times: matmuls per dtype, linear layers y = x·Wᵀ, and their operands.

x is (m, k), W is (n, k) row-major, so Wᵀ is the column-major (k, n) operand that cuBLAS's
fast path, torch._scaled_mm and torch._int_mm want. Every operand is random (never zeros: they
run faster than real data). torch is imported inside functions.

Linear layers, as the torch-cudagraph engine runs them, the GEMM alone (method v2: the
activation quantization is timed apart, `quant.py`):
- bf16, fp16: `x @ W.t()` (cuBLAS).
- fp8 (W8A8): x already in e4m3 with a per-tensor fp32 scale, W e4m3 with a per-tensor scale,
  `torch._scaled_mm`, both scales applied in its epilogue, bf16 out.
- int8 (W8A8): x already int8 with per-token scales, W int8 with per-channel scales, rows padded
  to 32 when m < 32 (`torch._int_mm` wants more than 16), `torch._int_mm` to int32, then the
  rescale by both scales to bf16 (three elementwise kernels, as the engine does it).
- int4 (W4A16): `torch.ops.aten._weight_int4pack_mm` (tinygemm), group 128, bf16 x.

Routed experts, as the validation engine runs them (`perfmodel/torchblocks/linear.py`): rows xs
(rows, k) sorted by expert, W (E, n, k) passed transposed to (E, k, n), offs the int32 end row
of each expert.
- bf16: `torch._grouped_mm(xs, Wᵀ, offs=offs)`.
- fp8: xs quantized inside the timed region with a dynamic per-tensor scale (abs, amax, scale,
  divide, cast to e4m3), the scale repeated per row, W e4m3 with (E, n) fp32 scales,
  `torch._scaled_grouped_mm`, bf16 out.
"""

from __future__ import annotations

from typing import Any, Callable

LINEAR_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
MATMUL_DTYPES = ("bf16", "fp16", "fp8", "int8")  # the dtypes with a peak; int4 computes in bf16
GROUPED_DTYPES = ("bf16", "fp8")  # routed experts: _grouped_mm, _scaled_grouped_mm
INT4_GROUP = 128
INT4_INNER_K_TILES = 8
FP8_MAX = 448.0  # largest finite e4m3fn
INT8_MIN_ROWS = 32

Kernel = Callable[[], Any]


def weight_bytes(dtype: str, n: int, k: int) -> int:
    """Bytes of one (n, k) weight and its scales as stored for `dtype`."""
    if dtype in ("bf16", "fp16"):
        return 2 * n * k
    if dtype == "fp8":
        return n * k + 4
    if dtype == "int8":
        return n * k + 4 * n
    if dtype == "int4":
        return n * k // 2 + (k // INT4_GROUP) * n * 2 * 2
    raise ValueError(f"unknown dtype {dtype!r}")


def activation_bytes(dtype: str, m: int, k: int) -> int:
    """Bytes of x (m, k) as the GEMM reads it: one byte for fp8/int8 (plus scales), else two."""
    if dtype in ("fp8", "int8"):
        return m * k + 4 * m
    return 2 * m * k


def weight(dtype: str, n: int, k: int, device: str) -> tuple[Any, ...]:
    """Random weight operands of one (n, k) linear: (W,) plus its scales for quantized dtypes."""
    import torch

    if dtype in ("bf16", "fp16"):
        return (torch.randn(n, k, dtype=_float_dtype(dtype), device=device),)
    if dtype == "fp8":
        w = torch.randn(n, k, dtype=torch.bfloat16, device=device).to(torch.float8_e4m3fn)
        return w, torch.rand((), device=device) + 0.5
    if dtype == "int8":
        w = torch.randint(-128, 128, (n, k), dtype=torch.int8, device=device)
        return w, torch.rand(1, n, device=device) + 0.5
    if dtype == "int4":
        nibbles = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device=device)
        packed = torch.ops.aten._convert_weight_to_int4pack(nibbles, INT4_INNER_K_TILES)
        scales_zeros = torch.rand(k // INT4_GROUP, n, 2, device=device).to(torch.bfloat16) + 0.5
        return packed, scales_zeros
    raise ValueError(f"unknown dtype {dtype!r}")


def activation(dtype: str, m: int, k: int, device: str) -> Any:
    """x (m, k): bf16 (fp16 for fp16); for fp8/int8 the quantized x and its scale (per tensor
    for fp8, per token for int8), as the quantization kernel leaves them."""
    import torch

    if dtype == "fp8":
        x = torch.randn(m, k, dtype=torch.bfloat16, device=device).to(torch.float8_e4m3fn)
        return x, torch.rand((), device=device) + 0.5
    if dtype == "int8":
        x = torch.randint(-127, 128, (m, k), dtype=torch.int8, device=device)
        return x, torch.rand(m, 1, device=device) / 127.0 + 1e-3
    return torch.randn(m, k, dtype=torch.float16 if dtype == "fp16" else torch.bfloat16,
                       device=device)


def linear(dtype: str, x: Any, w: tuple[Any, ...]) -> Kernel:
    """The timed region of y = x·Wᵀ in `dtype`, on x as `activation` makes it."""
    import torch

    if dtype in ("bf16", "fp16"):
        return lambda: torch.mm(x, w[0].t())
    if dtype == "fp8":
        return lambda: torch._scaled_mm(x[0], w[0].t(), scale_a=x[1], scale_b=w[1],
                                        out_dtype=torch.bfloat16)
    if dtype == "int8":
        return lambda: _int8_linear(x[0], x[1], w[0], w[1])
    if dtype == "int4":
        return lambda: torch.ops.aten._weight_int4pack_mm(x, w[0], INT4_GROUP, w[1])
    raise ValueError(f"unknown dtype {dtype!r}")


def _int8_linear(xq: Any, x_scale: Any, w: Any, w_scale: Any) -> Any:
    """_int_mm on quantized x (rows padded to 32), rescaled to bf16, as the engine does it."""
    import torch

    m = xq.shape[0]
    if m < INT8_MIN_ROWS:
        xq = torch.nn.functional.pad(xq, (0, 0, 0, INT8_MIN_ROWS - m))
    acc = torch._int_mm(xq, w.t())[:m]
    return (acc * x_scale).mul_(w_scale).to(torch.bfloat16)


def matmul(dtype: str, m: int, n: int, k: int, device: str) -> Kernel:
    """A bare (m, k) x (k, n) product in `dtype` on pre-made operands, for the peaks.

    bf16/fp16 take b row-major (`torch.mm(a, b)`); fp8 and int8 take it column-major, as
    _scaled_mm and _int_mm require. fp8 uses _scaled_mm's default (exact) accumulation.
    """
    import torch

    if dtype in ("bf16", "fp16"):  # both row-major, as the reference peaks were taken
        a = torch.randn(m, k, dtype=_float_dtype(dtype), device=device)
        b = torch.randn(k, n, dtype=_float_dtype(dtype), device=device)
        return lambda: torch.mm(a, b)
    if dtype == "fp8":
        a = torch.randn(m, k, dtype=torch.bfloat16, device=device).to(torch.float8_e4m3fn)
        b, _ = weight(dtype, n, k, device)
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16)
    if dtype == "int8":
        a = torch.randint(-128, 128, (m, k), dtype=torch.int8, device=device)
        b, _ = weight(dtype, n, k, device)
        return lambda: torch._int_mm(a, b.t())
    raise ValueError(f"no bare matmul for {dtype!r}")


def grouped_weight(dtype: str, experts: int, n: int, k: int, device: str) -> tuple[Any, ...]:
    """Random weights of `experts` routed experts, (E, n, k), plus (E, n) scales for fp8."""
    import torch

    w = torch.randn(experts, n, k, dtype=torch.bfloat16, device=device)
    if dtype == "bf16":
        return (w,)
    if dtype == "fp8":
        return w.to(torch.float8_e4m3fn), torch.rand(experts, n, device=device) + 0.5
    raise ValueError(f"no grouped GEMM for {dtype!r}")


def grouped_weight_bytes(dtype: str, experts: int, n: int, k: int) -> int:
    return experts * n * k * (2 if dtype == "bf16" else 1) + (4 * experts * n
                                                              if dtype == "fp8" else 0)


def grouped(dtype: str, xs: Any, w: tuple[Any, ...], offs: Any) -> Kernel:
    """The timed region of the routed experts' product on expert-sorted rows xs."""
    import torch

    w_t = w[0].transpose(-2, -1)  # (E, k, n), column-major as the kernels want
    if dtype == "bf16":
        return lambda: torch._grouped_mm(xs, w_t, offs=offs)
    if dtype == "fp8":
        return lambda: _fp8_grouped(xs, w_t, w[1], offs)
    raise ValueError(f"no grouped GEMM for {dtype!r}")


def _fp8_grouped(xs: Any, w_t: Any, w_scale: Any, offs: Any) -> Any:
    import torch

    scale = (xs.abs().amax().float() / FP8_MAX).clamp(min=1e-12)
    xq = (xs / scale).to(torch.float8_e4m3fn)
    rows = scale.expand(xs.shape[0]).contiguous()
    return torch._scaled_grouped_mm(xq, w_t, rows, w_scale, offs=offs, out_dtype=torch.bfloat16)


def probe_grouped(dtype: str, device: str) -> str | None:
    """None if a small grouped GEMM in `dtype` runs on `device` and gives the right rows (one
    expert left empty, as routing can), else the reason in one line."""
    import torch

    try:
        xs = torch.randn(32, 64, dtype=torch.bfloat16, device=device)
        w = grouped_weight(dtype, 4, 32, 64, device)
        offs = torch.tensor([8, 8, 24, 32], dtype=torch.int32, device=device)
        out = grouped(dtype, xs, w, offs)()
        want = xs[8:24].float() @ w[0][2].float().t()
        if dtype == "fp8":
            want = want * w[1][2]
        if not torch.allclose(out[8:24].float(), want, rtol=0.15, atol=0.15 * want.abs().max()):
            return "RuntimeError: wrong results on a 4-expert check"
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    except (RuntimeError, NotImplementedError, AttributeError, TypeError, ValueError) as exc:
        return one_line(exc)
    return None


def probe(dtype: str, device: str) -> str | None:
    """None if a small linear in `dtype` runs on `device`, else the reason in one line."""
    import torch

    try:
        x = activation(dtype, 4, 256, device)
        linear(dtype, x, weight(dtype, 64, 256, device))()
        if dtype in MATMUL_DTYPES:
            matmul(dtype, 32, 64, 256, device)()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    except (RuntimeError, NotImplementedError, AttributeError, TypeError) as exc:
        return one_line(exc)
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 160:
        text = text[:text.find(". ") + 1] if 0 < text.find(". ") < 160 else text[:160] + "..."
    return f"{type(exc).__name__}: {text}"


def _float_dtype(dtype: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
