"""GPU profiles: peak rates, bandwidth and memory as data with provenance, read from YAML.

A profile knows nothing of models. Datasheet profiles hold the vendor's dense figures; measured
profiles (written by `perfmodel calibrate-gpu`) add the spread of their peaks and the tables of
achieved kernel times that the estimate interpolates. Every field is type-checked on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from perfmodel.errors import GpuProfileError

PEAK_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
GPU_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "gpus"


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
    """Achieved seconds of one attention kernel at heads N, K and head dim H.

    points are (b, length, seconds): length is T query tokens for prefill (causal), C cached
    tokens for decode (one query per sequence).
    """

    heads: int
    kv_heads: int
    head_dim: int
    points: tuple[tuple[int, int, float], ...]


@dataclass(frozen=True)
class Tables:
    """What calibrate-gpu measured beyond the peaks. Any part may be missing (None or empty)."""

    linear: Mapping[str, LinearTable] = field(default_factory=dict)
    attention_prefill: AttentionTable | None = None
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


@dataclass(frozen=True)
class GpuSpec:
    """One GPU as a profile describes it, in SI units (FLOP/s, byte/s, bytes)."""

    name: str
    description: str
    kind: str  # "datasheet" or "measured"
    source: str
    date: str
    method: str
    peak_flops: Mapping[str, float | None]
    mem_bandwidth: float
    mem_bytes: float
    path: str = ""
    datasheet: str | None = None  # the datasheet profile a measured one compares against
    tables: Tables | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # spread, environment, notes

    def peak(self, dtype: str) -> float | None:
        return self.peak_flops.get(dtype)

    @property
    def provenance(self) -> str:
        if self.kind == "measured":
            return f"measured {self.date} ({self.method})"
        return f"datasheet ({self.source})"


def bundled_names() -> list[str]:
    return sorted(p.stem for p in GPU_DIR.glob("*.yaml"))


def load_gpu(name_or_path: str) -> GpuSpec:
    """A bundled profile by name (h100-sxm) or a profile YAML by path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = GPU_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise GpuProfileError(f"unknown GPU {name_or_path!r}; use one of "
                                  f"{', '.join(bundled_names())}, or a profile .yaml path")
    if not path.is_file():
        raise GpuProfileError(f"GPU profile {path} does not exist; run `perfmodel calibrate-gpu "
                              "--out` to write one, or name a bundled GPU")
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise GpuProfileError(f"GPU profile {path} is not valid YAML{where}; fix or regenerate "
                              "it") from exc
    return parse_gpu(data, str(path))


def parse_gpu(data: Any, path: str = "<profile>") -> GpuSpec:
    """Check every field's type and build a GpuSpec; a bad field is one GpuProfileError."""
    if not isinstance(data, dict):
        raise GpuProfileError(f"GPU profile {path} must be a YAML mapping")
    check = _Checker(path)
    peaks = check.mapping(data, "peak_flops")
    peak_flops = {k: check.number(peaks, k, optional=True, where="peak_flops")
                  for k in PEAK_DTYPES}
    if peak_flops["bf16"] is None:
        raise GpuProfileError(f"GPU profile {path}: peak_flops.bf16 is required")
    kind = check.text(data, "kind")
    if kind not in ("datasheet", "measured"):
        raise GpuProfileError(f"GPU profile {path}: kind must be datasheet or measured")
    reserved = {"name", "description", "kind", "source", "date", "method", "peak_flops",
                "mem_bandwidth", "mem_bytes", "datasheet", "tables"}
    return GpuSpec(
        name=check.text(data, "name"), description=check.text(data, "description"), kind=kind,
        source=check.text(data, "source"), date=str(data.get("date", "")),
        method=check.text(data, "method"), peak_flops=peak_flops,
        mem_bandwidth=check.number(data, "mem_bandwidth"), mem_bytes=check.number(data, "mem_bytes"),
        path=path, datasheet=data.get("datasheet"),
        tables=_parse_tables(data.get("tables"), check),
        extra={k: v for k, v in data.items() if k not in reserved})


class _Checker:
    """Type checks that name the profile and the field in their message."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, what: str) -> GpuProfileError:
        return GpuProfileError(f"GPU profile {self.path}: {what}; fix or regenerate the profile")

    def text(self, data: Mapping, key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"'{key}' must be a non-empty string")
        return value

    def mapping(self, data: Mapping, key: str) -> Mapping:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' must be a mapping")
        return value

    def number(self, data: Mapping, key: str, *, optional: bool = False, where: str = "") -> Any:
        value = data.get(key)
        name = f"{where}.{key}" if where else key
        if value is None and optional:
            return None
        if isinstance(value, str):
            raise self.fail(f"'{name}' is the string {value!r}; write numbers like 3.0e+12 "
                            "(PyYAML reads 3.0e12 as text)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise self.fail(f"'{name}' must be a positive number, not {value!r}")
        return float(value)

    def seconds(self, value: Any, name: str) -> float | None:
        if value is None:
            return None
        return self.number({name: value}, name)


def _parse_tables(raw: Any, check: _Checker) -> Tables | None:
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
    return Tables(
        linear=linear,
        attention_prefill=_parse_attention(raw.get("attention_prefill"), "prefill", check),
        attention_decode=_parse_attention(raw.get("attention_decode"), "decode", check),
        elementwise=_parse_pairs(raw.get("elementwise"), "elementwise", check),
        graph_launch_s=check.seconds(launch.get("graph_s"), "launch.graph_s"),
        eager_launch_s=check.seconds(launch.get("eager_s"), "launch.eager_s"),
        **_parse_kernel_tables(raw, check))


def _parse_kernel_tables(raw: Mapping, check: _Checker) -> dict[str, Any]:
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


def _mapping(raw: Any, name: str, check: _Checker) -> Mapping:
    """raw, which must be a mapping; {} for None."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise check.fail(f"{name} must be a mapping")
    return raw


def _points_of(raw: Mapping, key: str, check: _Checker, where: str = "tables") -> Any:
    """raw[key]['points'], or None where raw[key] is absent; raw[key] must be a mapping."""
    return _mapping(raw.get(key), f"{where}.{key}", check).get("points")


def _parse_points(raw: Any, name: str, ints: int, check: _Checker) -> tuple:
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


def _routing_shape(raw: Mapping, check: _Checker) -> tuple[int, int] | None:
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


def _parse_attention(raw: Any, phase: str, check: _Checker) -> AttentionTable | None:
    if raw is None:
        return None
    try:
        points = tuple((int(b), int(n), check.seconds(s, f"attention_{phase}"))
                       for b, n, s in raw["points"])
        return AttentionTable(int(raw["heads"]), int(raw["kv_heads"]), int(raw["head_dim"]),
                              points)
    except (KeyError, TypeError, ValueError) as exc:
        raise check.fail(f"tables.attention_{phase} needs heads, kv_heads, head_dim and "
                         "points [[b, length, seconds], ...]") from exc


def _parse_pairs(raw: Any, name: str, check: _Checker) -> tuple[tuple[float, float], ...]:
    if raw is None:
        return ()
    where = f"tables.{name}.bytes"
    try:
        return tuple((check.number({where: b}, where), check.seconds(s, f"tables.{name}.seconds"))
                     for b, s in zip(raw["bytes"], raw["seconds"], strict=True))
    except (KeyError, TypeError, ValueError) as exc:
        raise check.fail(f"tables.{name} needs equal-length bytes and seconds lists") from exc
