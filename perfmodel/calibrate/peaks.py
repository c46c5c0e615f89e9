"""The two ceilings of a roofline, measured: best matmul FLOP/s per dtype and copy bandwidth.

Peaks: a bare product of random operands at each square size of the plan, timed do_bench-style
(L2 flushed before each run, median of the runs), after `Timer.rest_s` of idle so that each
measurement starts at full clock (an H100 under sustained bf16 load drops from 1980 MHz to
~1450 and loses ~10%). The best size is timed `peak_repeats` more times. The profile's peak is
the best of those medians, as the seed's method took the best size; `spread` keeps min / median /
max at the best size (fp8 on an H100 moves by ~9% between runs) and `sweep` the rate per size.

Bandwidth: dst.copy_(src) over tensors far larger than L2, counting bytes read plus written,
best size kept and repeated the same way.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable

import perfmodel.calibrate.kernels as kernels
import perfmodel.calibrate.stats as stats
from perfmodel.calibrate.plan import Plan
from perfmodel.calibrate.timing import Timer

Step = Callable[[str], None]


@dataclass(frozen=True)
class Peak:
    """A measured ceiling (FLOP/s or byte/s): `value` is the best median at `best_shape`."""

    what: str  # a dtype, or "mem_bandwidth"
    spread: stats.Spread  # over the runs at the best shape
    best_shape: tuple[int, ...]  # (m, n, k) of a matmul, (bytes,) of a copy
    sweep: tuple[tuple[int, float], ...] = ()  # (size, rate) of the first run at each size

    @property
    def value(self) -> float:
        return self.spread.max


def matmul_peak(dtype: str, plan: Plan, timer: Timer, step: Step) -> Peak:
    """Best FLOP/s of `dtype` over the plan's square sizes, with its spread at the best size."""

    def measure(size: int) -> float:
        fn = kernels.matmul(dtype, size, size, size, timer.device)
        timer.pause(timer.rest_s)
        return stats.rate(stats.matmul_flop(size, size, size), timer.bench(fn).median)

    return _best_then_repeat(dtype, f"peak {dtype}", plan.peak_sizes, measure,
                             plan.peak_repeats, timer, step, lambda s: (s, s, s))


def copy_bandwidth(plan: Plan, timer: Timer, step: Step) -> Peak:
    """Best dst.copy_(src) byte/s (read + written) over the plan's sizes, with its spread."""
    import torch

    def measure(nbytes: int) -> float:
        src = torch.randn(nbytes // 4, device=timer.device)
        dst = torch.empty_like(src)
        seconds = timer.bench(lambda: dst.copy_(src)).median
        return stats.rate(stats.copy_bytes(src.numel() * 4), seconds)

    return _best_then_repeat("mem_bandwidth", "copy bandwidth", plan.copy_bytes, measure,
                             plan.peak_repeats, timer, step, lambda s: (s,), _bytes_label)


def _best_then_repeat(what: str, label: str, sizes: tuple[int, ...],
                      measure: Callable[[int], float], repeats: int, timer: Timer, step: Step,
                      shape: Callable[[int], tuple[int, ...]],
                      size_label: Callable[[int], str] = str) -> Peak:
    sweep = []
    for size in sizes:
        step(f"{label} {size_label(size)}")
        sweep.append((size, measure(size)))
        _release(timer)
    best_size, best = max(sweep, key=lambda pair: pair[1])
    step(f"{label} x{repeats} at {size_label(best_size)}")
    values = [best]
    for _ in range(repeats):
        values.append(measure(best_size))
        _release(timer)
    return Peak(what, stats.Spread.of(values), shape(best_size), tuple(sweep))


def _release(timer: Timer) -> None:
    if timer.is_cuda:  # a CPU frees by reference counting; gc.collect would cost 0.1-0.2 s
        import torch

        gc.collect()
        torch.cuda.empty_cache()


def _bytes_label(nbytes: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:g} {unit}"
    return f"{nbytes} B"
