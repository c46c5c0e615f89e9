"""The `act_quant` tables: the activation quantization kernels of perfmodel/torchblocks/quant.py
(static, dynamic-tensor, dynamic-token, fused), timed per dtype and scheme on random bf16 inputs.
torch is imported inside functions.
"""

from __future__ import annotations

from typing import Any, Callable

from perfmodel.calibrate.plan import QUANT_DTYPES, QUANT_SCHEMES, Plan
from perfmodel.calibrate.tables import series
from perfmodel.calibrate.timing import Timer
from perfmodel.torchblocks.quant import _triton_kernels, qmax, quantize


def act_quant(plan: Plan, timer: Timer, step: Any,
              notes: list[str]) -> dict[str, tuple[tuple[int, int, float], ...]]:
    """"dtype/scheme" -> (rows, width, seconds) of quantizing a random bf16 (rows, width) x.

    fused runs on CUDA only (its steps are skipped elsewhere); a scheme that fails leaves a note.
    """
    found = {}
    for dtype in QUANT_DTYPES:
        for scheme in QUANT_SCHEMES:
            count = len(plan.quant_rows) * len(plan.quant_widths)
            if scheme == "fused" and not (timer.is_cuda and _triton_kernels() is not None):
                step.skip(count, f"act_quant {dtype}/fused: CUDA and Triton only")
                continue
            points = series(_cases(dtype, scheme, plan, timer), timer, step, notes)
            if points:
                found[f"{dtype}/{scheme}"] = points
    return found


def _cases(dtype: str, scheme: str, plan: Plan, timer: Timer):
    import torch

    for width in plan.quant_widths:
        for rows in plan.quant_rows:
            def make(i: int, rows: int = rows, width: int = width) -> Callable[[], Any]:
                x = torch.randn(rows, width, dtype=torch.bfloat16, device=timer.device)
                scale = torch.tensor(4.0 / qmax(dtype), device=timer.device)  # |x| ≲ 4
                return lambda: quantize(x, dtype, scheme, scale)
            yield (f"act_quant {dtype}/{scheme} rows={rows} width={width}", (rows, width), make,
                   3 * rows * width)
