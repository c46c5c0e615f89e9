"""What a calibration run measures: the shape grids for full, --quick and CPU runs.

The grids are model-agnostic: linear layers over m (tokens in the batch) and a (k, n) set
spanning 1024..16384, attention at N=32 query heads, K=8 KV heads, H=128 (the reference tables)
and over head dims 64/128/256, GQA groups 1..16, absorbed MLA decode and sliding-window / sink
variants (`ATTENTION`), the activation quantization kernels over rows x width, elementwise ops
(contiguous and strided) over 4 KiB..1 GiB, RMSNorm over rows x D, the MoE kernels at E=128
experts, top-8: routing, sorting the token-expert pairs, the grouped GEMM over t experts of m
rows each (m up to 16384), and whole MoE blocks at decode batch sizes. A CPU run uses small
shapes so that it ends in seconds (it exists for tests and laptops, not for serving).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from perfmodel.calibrate.kernels import GROUPED_DTYPES, LINEAR_DTYPES, MATMUL_DTYPES

METHOD_VERSION = 2  # 2: GEMM-only fp8/int8 linears, act_quant, attention variants, moe_block
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
PREFILL_MAX_TOKENS = 65536  # skip prefill points with b·T above this
ROUTE_EXPERTS, ROUTE_TOP_K = 128, 8  # E and k of the routing, sort and grouped tables
QUICK_GROUPED_MAX_ROWS = 16384  # --quick skips grouped points with t·m above this
FULL_GROUPED_MAX_ROWS = 131072  # the full run skips grouped points with t·m above this
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

FULL_MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FULL_KN = tuple(itertools.product((1024, 4096, 16384), repeat=2))
GROUPED_KN = ((1024, 4096), (4096, 1024), (2048, 1536), (768, 2048))


@dataclass(frozen=True)
class AttentionCase:
    """One attention table to measure: its layout and its (b, length) points."""

    phase: str  # "prefill" or "decode"
    heads: int  # N
    kv_heads: int  # K (1 for MLA: the shared latent)
    head_dim: int  # H of q and k (the latent width for MLA)
    points: tuple[tuple[int, int], ...]
    kind: str = "gqa"  # or "mla" (absorbed, decode)
    window: int | None = None
    sinks: bool = False
    v_head_dim: int = 0  # 0: head_dim

    @property
    def label(self) -> str:
        extra = (f" window={self.window}" if self.window else "") + (" sinks" if self.sinks else "")
        return (f"attention {self.phase} {self.kind} N={self.heads} K={self.kv_heads} "
                f"H={self.head_dim}{extra}")


def attention_cases(prefill: tuple[tuple[int, int], ...], decode: tuple[tuple[int, int], ...],
                    windowed: tuple[tuple[int, int], ...]) -> tuple[AttentionCase, ...]:
    """The attention tables beyond the reference N=32/K=8/H=128 pair: head dims 64/128/256,
    groups 1..16 (decode; prefill FLOPs do not depend on K), absorbed MLA decode (N=128 over a
    576-wide latent, 512-wide value, DeepSeek-V3), gpt-oss (N=64, K=8, H=64, sinks, window 128)
    and Gemma 3 (N=32, K=16, H=128, window 1024). `windowed` are the prefill points of the
    windowed tables (T above the window; at or below it the kernel is the causal one)."""
    gqa = [(64, 8, 64), (16, 8, 256), (32, 32, 128), (64, 4, 128)]  # H 64/256, groups 1 and 16
    cases = [AttentionCase("prefill", n, k, h, prefill) for n, k, h in gqa]
    cases += [AttentionCase("decode", n, 8, h, decode)
              for n, h in ((8, 128), (64, 128), (128, 128), (64, 64), (16, 256))]
    cases.append(AttentionCase("decode", 128, 1, 576, decode, kind="mla", v_head_dim=512))
    for phase, points, window_points in (("prefill", prefill, windowed),
                                         ("decode", decode, decode)):
        cases.append(AttentionCase(phase, 64, 8, 64, points, sinks=True))
        cases.append(AttentionCase(phase, 64, 8, 64, window_points, window=128, sinks=True))
        cases.append(AttentionCase(phase, 32, 16, 128, window_points, window=1024))
    return tuple(cases)


MOE_SHAPES = ((128, 8, 2048, 768), (128, 4, 2880, 2880), (8, 2, 4096, 14336))  # E, k, D, F:
# Qwen3-30B-A3B, gpt-oss-120b (its E and k, SiLU·mul for its clamped SwiGLU), Mixtral-8x7B
QUANT_SCHEMES = ("static", "dynamic-tensor", "dynamic-token", "fused")
BURSTS_S = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # the power-limit curve (calibrate/power.py)
QUICK_BURSTS_S = (0.05, 0.5, 2.0)
QUANT_DTYPES = ("fp8", "int8")


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
    quant_rows: tuple[int, ...] = ()  # rows of the activation-quantization tables
    quant_widths: tuple[int, ...] = ()  # widths (the next linear's K)
    attention: tuple[AttentionCase, ...] = ()  # beyond the reference pair
    moe_tokens: tuple[int, ...] = ()  # tokens of the whole-MoE-block table
    moe_shapes: tuple[tuple[int, int, int, int], ...] = ()  # (E, k, D, F)
    prefill_skipped: tuple[tuple[int, int], ...] = ()  # (b, T) over PREFILL_MAX_TOKENS
    peak_dtypes: tuple[str, ...] = MATMUL_DTYPES
    linear_dtypes: tuple[str, ...] = LINEAR_DTYPES
    grouped_dtypes: tuple[str, ...] = GROUPED_DTYPES
    sustained_bursts_s: tuple[float, ...] = ()  # calibrate/power.py; () skips it (CPU)
    sustained_per_burst_s: float = 6.0
    sustained_dtypes: tuple[str, ...] = ("bf16", "fp8")

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
        new = (len(QUANT_DTYPES) * len(QUANT_SCHEMES) * len(self.quant_rows)
               * len(self.quant_widths) + sum(len(c.points) for c in self.attention)
               + len(self.moe_tokens) * len(self.moe_shapes))
        sustained = len(self.sustained_dtypes) * (len(self.sustained_bursts_s) + 1) \
            if self.sustained_bursts_s else 0
        return peaks + linear + len(self.prefill) + len(self.decode) + small + new + 1 + sustained


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
            grouped=grouped_grid((1, 4), (1, 8)), grouped_kn=((256, 512),),
            quant_rows=(64,), quant_widths=(256,),
            attention=(AttentionCase("decode", 8, 2, 64, ((1, 256),)),
                       AttentionCase("decode", 16, 1, 96, ((1, 128),), kind="mla",
                                     v_head_dim=64),
                       AttentionCase("prefill", 8, 2, 64, ((1, 256),), window=64, sinks=True)),
            moe_tokens=(2,), moe_shapes=((8, 2, 256, 128),))
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
            grouped=grouped_grid((1, 8, 128), (1, 16, 256, 1024, 16384),
                                 QUICK_GROUPED_MAX_ROWS),
            grouped_kn=GROUPED_KN[:2], quant_rows=(1, 64, 4096), quant_widths=(4096,),
            attention=attention_cases(((1, 2048), (1, 8192)), ((1, 4096), (32, 4096)),
                                      ((1, 8192),)),
            moe_tokens=(1, 16), moe_shapes=MOE_SHAPES[:1],
            sustained_bursts_s=QUICK_BURSTS_S, sustained_per_burst_s=3.0)
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
        grouped=grouped_grid((1, 8, 32, 128), (1, 4, 16, 64, 256, 1024, 4096, 16384),
                             FULL_GROUPED_MAX_ROWS), grouped_kn=GROUPED_KN,
        quant_rows=(1, 8, 64, 512, 4096, 16384), quant_widths=(1024, 4096, 16384),
        attention=attention_cases(
            ((1, 512), (1, 2048), (1, 8192), (1, 32768), (8, 512), (8, 2048)),
            tuple((b, c) for b in (1, 8, 32, 128) for c in (512, 4096, 32768)) + ((1, 131072),),
            ((1, 2048), (1, 8192), (4, 2048))),
        moe_tokens=(1, 2, 4, 8, 16, 32, 64, 128, 256), moe_shapes=MOE_SHAPES,
        sustained_bursts_s=BURSTS_S)
