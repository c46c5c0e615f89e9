"""Pure arithmetic of calibration: reductions of raw timing samples, counts, and sizing rules.

Nothing here imports torch, so every rule that shapes a measurement is unit-tested on the CPU:
how samples reduce (median, min, max, spread), how FLOPs and bytes are counted, how many buffer
sets rotate past the cache, how many kernel copies go into one CUDA graph and how many replays
are timed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Spread:
    """min / median / max of repeated measurements of one quantity (seconds, FLOP/s or byte/s)."""

    min: float
    median: float
    max: float

    @property
    def relative(self) -> float:
        """(max - min) / median: 0.05 means the repeats span 5% of their median."""
        return (self.max - self.min) / self.median if self.median else math.inf

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        return cls(min(_checked(samples)), median(samples), max(samples))


def _checked(samples: Sequence[float]) -> Sequence[float]:
    if not samples:
        raise ValueError("no samples to reduce")
    if not all(math.isfinite(s) for s in samples):
        raise ValueError(f"non-finite sample in {list(samples)!r}")
    return samples


def median(samples: Sequence[float]) -> float:
    """The middle sample; the mean of the two middle ones for an even count."""
    ordered = sorted(_checked(samples))
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def per_call(total_seconds: Sequence[float], calls: int) -> tuple[float, ...]:
    """Samples of a region that ran `calls` kernels (one graph replay, say), per kernel."""
    if calls < 1:
        raise ValueError("calls must be at least 1")
    return tuple(t / calls for t in total_seconds)


def rate(work: float, seconds: float) -> float:
    """FLOP/s or byte/s: work done over seconds taken."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds!r}")
    return work / seconds


def matmul_flop(m: int, n: int, k: int) -> int:
    """FLOP of an (m, k) x (k, n) product: 2·m·n·k (a multiply and an add; FLOPs, not MACs)."""
    return 2 * m * n * k


def copy_bytes(nbytes: int) -> int:
    """Bytes a device copy of nbytes moves through memory: each byte read once, written once."""
    return 2 * nbytes


def elementwise_bytes(nbytes: int, inputs: int = 2) -> int:
    """Bytes an out-of-place elementwise op over tensors of nbytes moves: inputs read, one write."""
    return (inputs + 1) * nbytes


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def buffer_sets(set_bytes: int, cache_bytes: int, factor: float, cap: int) -> int:
    """How many copies of a kernel's inputs to rotate over so that each run misses the cache.

    Rotating in a fixed cycle over more than factor x the cache (L2 on a GPU) evicts a set long
    before it comes round again. One set already that large needs no copies.
    """
    if set_bytes <= 0:
        raise ValueError("set_bytes must be positive")
    return clamp(math.ceil(factor * cache_bytes / set_bytes), 1, cap)


def graph_copies(sets: int, estimate_s: float, target_s: float, cap: int) -> int:
    """Copies of a kernel to capture in one CUDA graph (R), each on buffer set i mod sets.

    A short kernel (estimate under target) gets at least one copy per buffer set, so the whole
    rotation runs, and enough copies for the replay to last about target_s. A long kernel gets
    fewer: its inputs are read for longer than the cache could ever hide.
    """
    want = math.ceil(target_s / max(estimate_s, 1e-9))
    floor = sets if estimate_s < target_s else 1
    return clamp(max(want, floor), 1, cap)


def sample_count(replay_s: float, budget_s: float, low: int, high: int) -> int:
    """How many timed repetitions fit the per-point budget, at least `low`, at most `high`."""
    return clamp(round(budget_s / max(replay_s, 1e-9)), low, high)
