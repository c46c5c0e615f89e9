"""What a calibration run measures: the shape grids for full, --quick and CPU runs.

The grids are model-agnostic: linear layers over m (tokens in the batch) and a (k, n) set
spanning 1024..16384, attention at N=32 query heads, K=8 KV heads, H=128 (the most common
grouped-query layout; the estimate scales by heads), elementwise ops (contiguous and strided)
over 4 KiB..1 GiB, RMSNorm over rows x D, and the MoE kernels at E=128 experts, top-8: routing,
sorting the token-expert pairs, and the grouped GEMM over t experts of m rows each. A CPU run
uses small shapes so that it ends in seconds (it exists for tests and laptops, not for serving).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from perfmodel.calibrate.kernels import GROUPED_DTYPES, LINEAR_DTYPES, MATMUL_DTYPES

METHOD_VERSION = 1
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
PREFILL_MAX_TOKENS = 65536  # skip prefill points with b·T above this
ROUTE_EXPERTS, ROUTE_TOP_K = 128, 8  # E and k of the routing, sort and grouped tables
QUICK_GROUPED_MAX_ROWS = 8192  # --quick skips grouped points with t·m above this
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

FULL_MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FULL_KN = tuple(itertools.product((1024, 4096, 16384), repeat=2))
GROUPED_KN = ((1024, 4096), (4096, 1024), (2048, 1536), (768, 2048))


@dataclass(frozen=True)
class Plan:
    """The shapes of one run; `steps` counts its measurements for the progress bar."""

    mode: str  # "full", "quick" or "cpu"
    peak_sizes: tuple[int, ...]  # square m = n = k for the matmul peaks
    peak_repeats: int  # extra do_bench runs at the best shape, for the spread
    copy_bytes: tuple[int, ...]  # sizes of the bandwidth copy (bytes of one tensor)
    linear_ms: tuple[int, ...]
    linear_kn: tuple[tuple[int, int], ...]
    prefill: tuple[tuple[int, int], ...]  # (b, T)
    decode: tuple[tuple[int, int], ...]  # (b, C)
    elementwise_bytes: tuple[int, ...]  # bytes of one operand of an out-of-place add
    rmsnorm_rows: tuple[int, ...]
    rmsnorm_dims: tuple[int, ...]  # D, the normalised width
    strided_bytes: tuple[int, ...]  # bytes of the output of a * b, a a strided view
    rope_tokens: tuple[int, ...]  # T of the unfused RoPE table (q of 32 heads of 128)
    route_tokens: tuple[int, ...]  # tokens of the routing table; the sort table has k x these
    grouped: tuple[tuple[int, int], ...]  # (experts t, rows m per expert) of the grouped GEMM
    grouped_kn: tuple[tuple[int, int], ...]
    prefill_skipped: tuple[tuple[int, int], ...] = ()  # (b, T) over PREFILL_MAX_TOKENS
    peak_dtypes: tuple[str, ...] = MATMUL_DTYPES
    linear_dtypes: tuple[str, ...] = LINEAR_DTYPES
    grouped_dtypes: tuple[str, ...] = GROUPED_DTYPES

    @property
    def grouped_steps(self) -> int:
        """Measurements of the grouped table of one dtype."""
        return len(self.grouped) * len(self.grouped_kn)

    @property
    def steps(self) -> int:
        peaks = len(self.peak_dtypes) * (len(self.peak_sizes) + 1) + len(self.copy_bytes) + 1
        linear = len(self.linear_dtypes) * len(self.linear_ms) * len(self.linear_kn)
        small = (len(self.elementwise_bytes) + len(self.rmsnorm_rows) * len(self.rmsnorm_dims)
                 + 2 * len(self.strided_bytes) + len(self.rope_tokens)
                 + 2 * len(self.route_tokens)
                 + len(self.grouped_dtypes) * self.grouped_steps)
        return peaks + linear + len(self.prefill) + len(self.decode) + small + 1


def prefill_grid(batches: tuple[int, ...], lengths: tuple[int, ...]) -> dict:
    """Plan fields: the (b, T) pairs with at most PREFILL_MAX_TOKENS tokens, and the others."""
    pairs = [(b, t) for b in batches for t in lengths]
    return {"prefill": tuple(p for p in pairs if p[0] * p[1] <= PREFILL_MAX_TOKENS),
            "prefill_skipped": tuple(p for p in pairs if p[0] * p[1] > PREFILL_MAX_TOKENS)}


def grouped_grid(experts: tuple[int, ...], rows: tuple[int, ...],
                 max_rows: int | None = None) -> tuple[tuple[int, int], ...]:
    """(t, m) pairs: t experts touched, m rows each, t·m at most max_rows (None: no limit)."""
    return tuple((t, m) for t in experts for m in rows if max_rows is None or t * m <= max_rows)


def strided_shape(nbytes: int) -> tuple[int, int]:
    """(rows, w) of a bf16 (rows, w) output of nbytes: w = 4096 where there are at least 8 rows,
    narrower below, so that even a 4 KiB point has 8 rows (one row would be contiguous)."""
    width = max(1, min(4096, nbytes // (2 * 8)))
    return nbytes // (2 * width), width


def make_plan(quick: bool, cpu: bool) -> Plan:
    if cpu:
        return Plan(
            mode="cpu", peak_sizes=(256, 512), peak_repeats=2, copy_bytes=(32 * MIB, 128 * MIB),
            linear_ms=(1, 16, 64), linear_kn=((256, 256), (512, 1024)),
            prefill=((1, 128), (2, 256)), decode=((1, 256), (4, 1024)),
            elementwise_bytes=(4 * KIB, 256 * KIB, 16 * MIB),
            rmsnorm_rows=(1, 4, 16, 64, 256), rmsnorm_dims=(256, 1024),
            strided_bytes=(4 * KIB, 256 * KIB, 16 * MIB), route_tokens=(1, 8, 64, 512),
            rope_tokens=(1, 16, 256),
            grouped=grouped_grid((1, 4), (1, 8)), grouped_kn=((256, 512),))
    if quick:
        return Plan(
            mode="quick", peak_sizes=(8192, 16384), peak_repeats=2,
            copy_bytes=(1 * GIB, 2 * GIB),
            linear_ms=(1, 8, 64, 512, 4096, 16384),
            linear_kn=((1024, 1024), (4096, 4096), (16384, 16384), (4096, 16384), (16384, 4096)),
            **prefill_grid((1, 4), (512, 2048, 8192)),
            decode=((1, 1024), (1, 131072), (8, 4096), (32, 16384), (128, 1024)),
            elementwise_bytes=tuple(4 * KIB * 16 ** i for i in range(5)) + (GIB,),
            rmsnorm_rows=(1, 16, 256, 4096, 16384), rmsnorm_dims=(1024, 4096, 8192),
            strided_bytes=tuple(4 * KIB * 16 ** i for i in range(5)) + (GIB,),
            rope_tokens=(1, 64, 4096, 65536),
            route_tokens=(1, 64, 4096, 32768),
            grouped=grouped_grid((1, 8, 128), (1, 16, 64, 256), QUICK_GROUPED_MAX_ROWS),
            grouped_kn=GROUPED_KN[:2])
    return Plan(
        mode="full", peak_sizes=(4096, 6144, 8192, 12288, 16384), peak_repeats=4,
        copy_bytes=(1 * GIB, 2 * GIB, 4 * GIB),
        linear_ms=FULL_MS, linear_kn=FULL_KN,
        **prefill_grid((1, 4, 16), (128, 512, 2048, 8192, 32768)),
        decode=tuple((b, c) for b in (1, 8, 32, 128)
                     for c in (256, 1024, 4096, 16384, 65536, 131072)),
        elementwise_bytes=tuple(4 * KIB * 2 ** i for i in range(19)),
        rmsnorm_rows=(1, 4, 16, 64, 256, 1024, 4096, 16384), rmsnorm_dims=(1024, 4096, 8192),
        strided_bytes=tuple(4 * KIB * 2 ** i for i in range(19)),
        rope_tokens=tuple(4 ** i for i in range(9)),
        route_tokens=(1, 8, 64, 512, 4096, 32768),
        grouped=grouped_grid((1, 8, 32, 128), (1, 4, 16, 64, 256)), grouped_kn=GROUPED_KN)
