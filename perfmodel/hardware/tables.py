"""The measured kernel tables of a GPU profile (`tables:` in its YAML), type-checked on load.

`perfmodel calibrate-gpu` writes them (docs/calibration.md gives the schema); the estimate
interpolates them. Every part is optional: a profile written before a table existed loads with
it empty (or None), and a malformed one is one GpuProfileError naming the field. Method v1
profiles timed the fp8/int8 linears with the dynamic activation quantization inside
(`quant_in_linear` True); from v2 on the linear tables time the GEMM alone and `act_quant`
times the quantization kernels apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from perfmodel.hardware.checks import Checker

QUANT_DTYPES = ("fp8", "int8")
QUANT_SCHEMES = ("static", "dynamic-tensor", "dynamic-token", "fused")
PHASES = ("prefill", "decode")
ATTENTION_KINDS = ("gqa", "mla")


@dataclass(frozen=True)
class LinearTable:
    """Achieved seconds of y = x·Wᵀ, x (m, k), W (n, k), for one weight dtype.

    seconds[i][j] is the time at shapes[i] = (k, n) and m = ms[j]; null (None) where the shape
    was skipped (out of memory, say).
    """

    ms: tuple[int, ...]
    shapes: tuple[tuple[int, int], ...]
    seconds: tuple[tuple[float | None, ...], ...]


@dataclass(frozen=True)
class AttentionTable:
    """Achieved seconds of one attention kernel: N heads, K KV heads, head dim H (q·k) and
    v_head_dim (the value's; H where 0 is given), in one phase, kind, window and sink setting.

    points are (b, length, seconds): length is T query tokens for prefill (causal), C cached
    tokens for decode (one query per sequence; a windowed table reads min(C, window) of them).
    kind "mla" is absorbed MLA decode: N query heads over one shared latent of width H, whose
    first v_head_dim columns are the value.
    """

    heads: int
    kv_heads: int
    head_dim: int
    points: tuple[tuple[int, int, float], ...]
    phase: str = ""  # "prefill" or "decode" ("" only in hand-built tables that predate it)
    kind: str = "gqa"
    window: int | None = None
    sinks: bool = False
    v_head_dim: int = 0

    def __post_init__(self) -> None:
        if not self.v_head_dim:
            object.__setattr__(self, "v_head_dim", self.head_dim)

    @property
    def group(self) -> int:
        """Query heads per KV head (N / K)."""
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class Tables:
    """What calibrate-gpu measured beyond the peaks. Any part may be missing (None or empty)."""

    linear: Mapping[str, LinearTable] = field(default_factory=dict)
    attention_prefill: AttentionTable | None = None  # N=32, K=8, H=128 (also in `attention`)
    attention_decode: AttentionTable | None = None
    elementwise: tuple[tuple[float, float], ...] = ()  # (bytes moved, seconds)
    graph_launch_s: float | None = None  # one tiny kernel replayed inside a CUDA graph
    eager_launch_s: float | None = None  # one tiny kernel launched from Python
    rmsnorm: tuple[tuple[int, int, float], ...] = ()  # (rows, D, seconds) of F.rms_norm
    strided: tuple[tuple[float, float], ...] = ()  # (bytes moved, seconds), a strided operand
    rope: tuple[tuple[float, float], ...] = ()  # (minimal bytes, seconds), unfused PyTorch RoPE
    silu_mul: tuple[tuple[float, float], ...] = ()  # (minimal bytes, seconds), SiLU(gate)·up
    routing: tuple[tuple[int, float], ...] = ()  # (tokens, seconds): softmax, top-k, renormalise
    routing_shape: tuple[int, int] | None = None  # (experts E, top_k) of routing and sort
    sort: tuple[tuple[int, float], ...] = ()  # (token-expert pairs, seconds) sorted by expert
    # by dtype: (m rows per expert, k, n, experts, seconds) of the routed experts' grouped GEMM
    grouped: Mapping[str, tuple[tuple[int, int, int, int, float], ...]] = field(
        default_factory=dict)
    # True (method v1): the fp8/int8 linear tables include dynamic activation quantization;
    # False (v2): they time the GEMM alone on quantized inputs, act_quant the quantization
    quant_in_linear: bool = True
    # "{fp8|int8}/{static|dynamic-tensor|dynamic-token|fused}" -> (rows, width, seconds)
    act_quant: Mapping[str, tuple[tuple[int, int, float], ...]] = field(default_factory=dict)
    attention: tuple[AttentionTable, ...] = ()  # every measured attention table
    # (tokens, experts, top_k, hidden, intermediate, seconds) of a whole bf16 MoE block
    moe_block: tuple[tuple[int, int, int, int, int, float], ...] = ()


def parse_tables(raw: Any, check: Checker, method_version: Any = 1) -> Tables | None:
    """Tables from a profile's `tables:` mapping (None where the profile has none)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise check.fail("'tables' must be a mapping")
    linear = {}
    for dtype, table in (raw.get("linear") or {}).items():
        try:
            ms = tuple(int(m) for m in table["m"])
            shapes = tuple((int(k), int(n)) for k, n in table["k_n"])
            seconds = tuple(tuple(check.seconds(s, f"linear.{dtype}") for s in row)
                            for row in table["seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise check.fail(f"tables.linear.{dtype} needs m, k_n and seconds lists") from exc
        if len(seconds) != len(shapes) or any(len(row) != len(ms) for row in seconds):
            raise check.fail(f"tables.linear.{dtype}: seconds must be one row of len(m) per k_n")
        linear[dtype] = LinearTable(ms, shapes, seconds)
    launch = raw.get("launch") or {}
    v2 = _parse_v2_tables(raw, check, method_version)
    legacy = {phase: _parse_attention(raw.get(f"attention_{phase}"), phase, check)
              or reference_attention(v2["attention"], phase) for phase in PHASES}
    if not v2["attention"]:  # a v1 profile: its two tables are all it measured
        v2["attention"] = tuple(t for t in legacy.values() if t is not None)
    return Tables(
        linear=linear, attention_prefill=legacy["prefill"], attention_decode=legacy["decode"],
        elementwise=_parse_pairs(raw.get("elementwise"), "elementwise", check),
        graph_launch_s=check.seconds(launch.get("graph_s"), "launch.graph_s"),
        eager_launch_s=check.seconds(launch.get("eager_s"), "launch.eager_s"),
        **_parse_kernel_tables(raw, check), **v2)


REFERENCE_SHAPE = (32, 8, 128)  # N, K, H of attention_prefill and attention_decode


def reference_attention(tables: tuple[AttentionTable, ...], phase: str) -> AttentionTable | None:
    """The plain GQA table at N=32, K=8, H=128 of `phase` (what v1 profiles held), if any."""
    for table in tables:
        if (table.phase == phase and table.kind == "gqa" and table.window is None
                and not table.sinks and (table.heads, table.kv_heads, table.head_dim)
                == REFERENCE_SHAPE and table.v_head_dim == table.head_dim):
            return table
    return None


def _parse_kernel_tables(raw: Mapping, check: Checker) -> dict[str, Any]:
    """The RMSNorm, strided elementwise and MoE tables (absent in older profiles: empty)."""
    grouped = _mapping(raw.get("grouped"), "tables.grouped", check)
    return dict(
        rmsnorm=_parse_points(_points_of(raw, "rmsnorm", check), "rmsnorm", 2, check),
        strided=_parse_pairs(raw.get("strided"), "strided", check),
        rope=_parse_pairs(raw.get("rope"), "rope", check),
        silu_mul=_parse_pairs(raw.get("silu_mul"), "silu_mul", check),
        routing=_parse_points(_points_of(raw, "routing", check), "routing", 1, check),
        routing_shape=_routing_shape(raw, check),
        sort=_parse_points(_points_of(raw, "sort", check), "sort", 1, check),
        grouped={str(dtype): _parse_points(_points_of(grouped, dtype, check, "tables.grouped"),
                                           f"grouped.{dtype}", 4, check)
                 for dtype in grouped})


def _parse_v2_tables(raw: Mapping, check: Checker, method_version: Any) -> dict[str, Any]:
    """quant_in_linear, act_quant, attention and moe_block (method v2; absent before)."""
    quant_in_linear = raw.get("quant_in_linear")
    if quant_in_linear is None:  # not written before v2, whose linears held the quantization
        quant_in_linear = not (isinstance(method_version, int) and method_version >= 2)
    elif not isinstance(quant_in_linear, bool):
        raise check.fail(f"tables.quant_in_linear must be true or false, not {quant_in_linear!r}")
    act_quant = _mapping(raw.get("act_quant"), "tables.act_quant", check)
    pattern = re.compile(rf"({'|'.join(QUANT_DTYPES)})/({'|'.join(QUANT_SCHEMES)})")
    for key in act_quant:
        if not isinstance(key, str) or not pattern.fullmatch(key):
            raise check.fail(f"tables.act_quant key {key!r} is not dtype/scheme with dtype in "
                             f"{', '.join(QUANT_DTYPES)} and scheme in {', '.join(QUANT_SCHEMES)}")
    attention = raw.get("attention")
    if attention is not None and not isinstance(attention, list):
        raise check.fail("tables.attention must be a list of tables")
    return dict(
        quant_in_linear=quant_in_linear,
        act_quant={key: _parse_points(_points_of(act_quant, key, check, "tables.act_quant"),
                                      f"act_quant.{key}", 2, check) for key in act_quant},
        attention=tuple(_parse_attention_v2(t, i, check)
                        for i, t in enumerate(attention or ())),
        moe_block=_parse_points(_points_of(raw, "moe_block", check), "moe_block", 5, check))


def _parse_attention_v2(raw: Any, index: int, check: Checker) -> AttentionTable:
    """One entry of tables.attention: every field typed, phase and kind from their lists."""
    name = f"tables.attention[{index}]"
    if not isinstance(raw, dict):
        raise check.fail(f"{name} must be a mapping")
    if raw.get("phase") not in PHASES or raw.get("kind") not in ATTENTION_KINDS:
        raise check.fail(f"{name} needs phase in {'|'.join(PHASES)} and kind in "
                         f"{'|'.join(ATTENTION_KINDS)}, not {raw.get('phase')!r}, "
                         f"{raw.get('kind')!r}")
    if not isinstance(raw.get("sinks"), bool):
        raise check.fail(f"{name}.sinks must be true or false, not {raw.get('sinks')!r}")
    heads, kv_heads, head_dim, v_head_dim = (check.count(raw.get(k), f"{name}.{k}") for k in
                                             ("heads", "kv_heads", "head_dim", "v_head_dim"))
    if heads % kv_heads:
        raise check.fail(f"{name}: heads {heads} is not a multiple of kv_heads {kv_heads}")
    return AttentionTable(
        heads, kv_heads, head_dim,
        _parse_points(raw.get("points"), f"attention[{index}]", 2, check),
        phase=raw["phase"], kind=raw["kind"],
        window=check.count(raw.get("window"), f"{name}.window", optional=True),
        sinks=raw["sinks"], v_head_dim=v_head_dim)


def _mapping(raw: Any, name: str, check: Checker) -> Mapping:
    """raw, which must be a mapping; {} for None."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise check.fail(f"{name} must be a mapping")
    return raw


def _points_of(raw: Mapping, key: str, check: Checker, where: str = "tables") -> Any:
    """raw[key]['points'], or None where raw[key] is absent; raw[key] must be a mapping."""
    return _mapping(raw.get(key), f"{where}.{key}", check).get("points")


def _parse_points(raw: Any, name: str, ints: int, check: Checker) -> tuple:
    """[[count, ..., seconds], ...] with `ints` positive integers before the seconds."""
    if raw is None:
        return ()
    shape = f"tables.{name}.points must be a list of [{', '.join(['int'] * ints)}, seconds]"
    if not isinstance(raw, list):
        raise check.fail(shape)
    points = []
    for point in raw:
        if not isinstance(point, list) or len(point) != ints + 1 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in point[:-1]):
            raise check.fail(f"{shape}, not {point!r}")
        seconds = check.seconds(point[-1], f"tables.{name}")
        if seconds is None:
            raise check.fail(f"{shape}, not {point!r}")
        points.append((*point[:-1], seconds))
    return tuple(points)


def _routing_shape(raw: Mapping, check: Checker) -> tuple[int, int] | None:
    """(experts, top_k) of tables.routing, which tables.sort must agree with where it says."""
    shapes = {}
    for key in ("routing", "sort"):
        table = _mapping(raw.get(key), f"tables.{key}", check)
        if not table or (key == "sort" and "experts" not in table and "top_k" not in table):
            continue
        values = (table.get("experts"), table.get("top_k"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise check.fail(f"tables.{key} needs positive integers experts and top_k, not "
                             f"{values[0]!r} and {values[1]!r}")
        shapes[key] = values
    if len(set(shapes.values())) > 1:
        raise check.fail(f"tables.sort is for experts and top_k {shapes['sort']}, tables.routing "
                         f"for {shapes['routing']}; they must agree")
    return next(iter(shapes.values()), None)


def _parse_attention(raw: Any, phase: str, check: Checker) -> AttentionTable | None:
    if raw is None:
        return None
    try:
        points = tuple((int(b), int(n), check.seconds(s, f"attention_{phase}"))
                       for b, n, s in raw["points"])
        return AttentionTable(int(raw["heads"]), int(raw["kv_heads"]), int(raw["head_dim"]),
                              points, phase=phase)
    except (KeyError, TypeError, ValueError) as exc:
        raise check.fail(f"tables.attention_{phase} needs heads, kv_heads, head_dim and "
                         "points [[b, length, seconds], ...]") from exc


def _parse_pairs(raw: Any, name: str, check: Checker) -> tuple[tuple[float, float], ...]:
    if raw is None:
        return ()
    where = f"tables.{name}.bytes"
    try:
        return tuple((check.number({where: b}, where), check.seconds(s, f"tables.{name}.seconds"))
                     for b, s in zip(raw["bytes"], raw["seconds"], strict=True))
    except (KeyError, TypeError, ValueError) as exc:
        raise check.fail(f"tables.{name} needs equal-length bytes and seconds lists") from exc
