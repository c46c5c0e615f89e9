"""Attention tables: the measured table nearest an attention op's shape, read as time over roof.

A profile may carry several attention tables (prefill and decode; GQA over head dims and group
sizes; MLA decode over the 576-wide latent; sliding-window and sink variants). Older profiles
carry one prefill and one decode table at 32/8 heads of 128. An op is timed from the table of
its phase nearest in kind, head dim, GQA group (N/K), window and sinks, as a RoofCurve: the
table's times against their roofline at the target's rates, so a borrowed table is applied to
the target's own peaks and bandwidth and the time never falls as the work grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.cost.interpolate import RoofCurve
from perfmodel.cost.ops import Op, causal_pairs
from perfmodel.hardware.gpu import AttentionTable, Tables

BASE_BYTES = 2  # the tables are timed in bf16, KV cache included


@dataclass(frozen=True)
class Variant:
    """What sets one attention table apart: phase, kind, head dims, group, window, sinks."""

    phase: str
    kind: str
    heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int
    window: int | None
    sinks: bool


def variant(table: AttentionTable, phase: str | None = None) -> Variant:
    """A table's variant; tables of older profiles are GQA with V as wide as K, no window."""
    return Variant(getattr(table, "phase", None) or phase, getattr(table, "kind", None) or "gqa",
                   table.heads, table.kv_heads, table.head_dim,
                   getattr(table, "v_head_dim", None) or table.head_dim,
                   getattr(table, "window", None), bool(getattr(table, "sinks", False)))


def all_tables(tables: Tables) -> list[tuple[Variant, AttentionTable]]:
    """Every attention table with its variant; attention_prefill and attention_decode name
    their phase where the table itself does not."""
    legacy = {id(t): phase for phase, t in (("prefill", tables.attention_prefill),
                                            ("decode", tables.attention_decode)) if t}
    found = [(variant(t, legacy.get(id(t))), t) for t in getattr(tables, "attention", ()) or ()]
    for phase, table in (("prefill", tables.attention_prefill),
                         ("decode", tables.attention_decode)):
        if table is not None and all(t is not table for _, t in found):
            found.append((variant(table, phase), table))
    return [(v, t) for v, t in found if v.phase in ("prefill", "decode") and t.points]


def work(v: Variant, b: int, length: int) -> tuple[float, float]:
    """FLOPs and bytes of one table point (docs/model.md's attention formulas, bf16)."""
    qk, hv = v.head_dim, v.v_head_dim
    if v.phase == "prefill":
        flops = 2.0 * b * v.heads * causal_pairs(length, v.window) * (qk + hv)
        return flops, b * length * (v.heads + v.kv_heads) * (qk + hv) * BASE_BYTES
    s = length if v.window is None else min(length, v.window)
    cache = qk if v.kind == "mla" else v.kv_heads * (qk + hv)  # MLA: latent + rotary key
    flops = 2.0 * b * v.heads * s * (qk + hv)
    return flops, (b * s * cache + b * v.heads * (qk + hv)) * BASE_BYTES


def distance(v: Variant, op: Op) -> float:
    """How far a table's variant is from the op's: kind first, then log ratios of head dim
    and group size, then window and sinks."""
    _, _, heads, kv_heads, qk = op.shape[:5]
    attn = op.attention
    kind = attn.kind if attn is not None and op.phase == "decode" else "gqa"
    window = attn.window if attn is not None else None
    sinks = bool(attn.sinks) if attn is not None else False
    d = 10.0 * (v.kind != kind)
    d += abs(math.log(v.head_dim / max(qk, 1)))
    d += abs(math.log((v.heads / v.kv_heads) / max(heads / max(kv_heads, 1), 1e-9)))
    if (v.window is None) != (window is None):
        d += 1.0
    elif v.window is not None and window is not None:
        d += 0.5 * abs(math.log(v.window / window))
    return d + 0.5 * (v.sinks != sinks)


class AttentionModel:
    """Each attention table as a RoofCurve at the target's rates, built when first needed."""

    def __init__(self, tables: Tables, source, target) -> None:
        self.source, self.target = source, target
        self.tables = all_tables(tables)
        self._curves: dict[int, tuple[RoofCurve, float]] = {}
        self._chosen: dict[tuple, int] = {}

    def has(self, phase: str) -> bool:
        return any(v.phase == phase for v, _ in self.tables)

    def _curve(self, index: int) -> tuple[RoofCurve, float]:
        if index not in self._curves:
            v, table = self.tables[index]
            points = []
            for b, length, seconds in table.points:
                flops, nbytes = work(v, b, length)
                src = self.source.roofline(flops, nbytes, "bf16")
                tgt = self.target.roofline(flops, nbytes, "bf16")
                points.append((tgt, seconds * tgt / src))
            self._curves[index] = (RoofCurve(points), min(s for _, _, s in table.points))
        return self._curves[index]

    def seconds(self, op: Op, roof: float, banded: bool = False) -> float | None:
        """One occurrence of the op: the nearest table's time at the op's roofline, never
        below that table's smallest measured time (a latency floor).

        banded: the engine's prefill kernel skips the tiles outside a sliding window
        (FlashAttention's local attention), so a windowed op is timed from the window-less
        tables over its banded work; the windowed tables were timed through SDPA with a dense
        banded mask, which computes the whole causal square."""
        found = self.curve_for(op, banded)
        if found is None:
            return None
        curve, floor = found
        return max(curve(roof), floor)

    def curve_for(self, op: Op, banded: bool = False) -> tuple[RoofCurve, float] | None:
        """The nearest table's curve and latency floor for ops of op's phase, heads and layer
        kind (seconds' lookup, which ops differing only in batch and length share)."""
        attn = op.attention
        key = (op.phase, op.shape[2:5], attn, banded)
        if key not in self._chosen:
            options = [i for i, (v, _) in enumerate(self.tables) if v.phase == op.phase]
            if banded and op.phase == "prefill":
                options = [i for i in options if self.tables[i][0].window is None] or options
            if not options:
                return None
            self._chosen[key] = min(options, key=lambda i: distance(self.tables[i][0], op))
        return self._curve(self._chosen[key])
