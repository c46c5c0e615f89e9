"""How a GPU talks to its peers: the link (kind, bandwidth, source) and measured collectives.

A profile's `interconnect:` block gives the link, per GPU and per direction, in byte/s:

    interconnect: {kind: nvlink4, bandwidth: 4.5e+11, source: "NVIDIA H100 datasheet ..."}

It may also give the network between nodes, per GPU and per direction (network_bandwidth,
network_source: a node's NICs over its GPUs), which a disaggregated deployment's KV transfer
uses when its pools do not share a node (serve/disagg.py).

`collectives:` holds what `perfmodel calibrate-gpu --gpus N` measured through NCCL, per GPU
count, each table [[bytes, seconds], ...] (bytes as nccl-tests counts them: the whole buffer of
one rank, the gathered output for all-gather, the input for reduce-scatter):

    collectives:
      date: "2026-11-27"
      method: "..."
      "2": {all_reduce: [[1024, 9.1e-06], ...], all_gather: ..., reduce_scatter: ...,
            all_to_all: ..., send_recv: ...}

Beside NCCL's tables a GPU count may hold custom_all_reduce (with one_shot_all_reduce and
two_shot_all_reduce, of which it is the per-size minimum): the engines' custom-style all-reduce,
timed through PyTorch symmetric memory (calibrate/symm_allreduce.py), its method in
collectives.custom_method.

A profile foo.yaml may keep both blocks in collectives/foo.yaml beside it (a sidecar that
calibrate-gpu --gpus writes, so a re-run of the one-GPU calibration leaves them alone); the
sidecar's blocks take precedence. Nothing here knows about models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.yamlcache import YamlError, load_yaml

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
CUSTOM_TABLES = ("custom_all_reduce", "one_shot_all_reduce", "two_shot_all_reduce")
TABLE_NAMES = COLLECTIVES + CUSTOM_TABLES
LINK_KINDS = ("nvlink3", "nvlink4", "nvlink5", "pcie4", "pcie5", "xgmi", "unknown")
Table = tuple[tuple[float, float], ...]  # (bytes, seconds), bytes ascending


@dataclass(frozen=True)
class Interconnect:
    """The GPU-to-GPU link in SI units, and the collective tables measured over it.

    bandwidth is byte/s per GPU per direction (NVLink 4: 450e9 of the 900 GB/s NVIDIA quotes as
    the bidirectional total). tables maps a GPU count to {collective: ((bytes, seconds), ...)}.
    """

    kind: str
    bandwidth: float | None
    source: str
    tables: Mapping[int, Mapping[str, Table]] = field(default_factory=dict)
    date: str = ""
    method: str = ""
    custom_method: str = ""
    network_bandwidth: float | None = None  # byte/s per GPU per direction between nodes
    network_source: str = ""

    @property
    def gpu_counts(self) -> tuple[int, ...]:
        return tuple(sorted(self.tables))

def sidecar_path(profile_path: str) -> Path:
    """Where calibrate-gpu --gpus keeps the blocks of profile foo.yaml: collectives/foo.yaml."""
    path = Path(profile_path)
    return path.parent / "collectives" / path.name


def parse_interconnect(data: Mapping[str, Any], path: str = "<profile>") -> Interconnect | None:
    """The interconnect of a profile mapping (and of its sidecar file), or None if it has none."""
    merged = dict(data)
    side = sidecar_path(path) if path and not path.startswith("<") else None
    if side is not None and side.is_file():
        try:
            extra = load_yaml(side.read_text()) or {}
        except YamlError as exc:
            raise GpuProfileError(f"{side} is not valid YAML; fix or delete it") from exc
        if not isinstance(extra, dict):
            raise GpuProfileError(f"{side} must be a YAML mapping; fix or delete it")
        merged.update({k: v for k, v in extra.items() if k in ("interconnect", "collectives")})
    link, measured = merged.get("interconnect"), merged.get("collectives")
    if link is None and measured is None:
        return None
    where = str(side) if side is not None and side.is_file() else path
    link = _mapping(link, "interconnect", where)
    kind = str(link.get("kind", "unknown"))
    if kind not in LINK_KINDS:
        raise _fail(where, f"interconnect.kind must be one of {', '.join(LINK_KINDS)}, "
                           f"not {kind!r}")
    bandwidth = _positive(link.get("bandwidth"), "interconnect.bandwidth", where, optional=True)
    measured = _mapping(measured, "collectives", where)
    tables = {int(k): _parse_counts(v, f"collectives.{k}", where)
              for k, v in measured.items() if str(k).isdigit()}
    if any(n < 2 for n in tables):
        raise _fail(where, "collectives are keyed by GPU counts of 2 or more")
    network = _positive(link.get("network_bandwidth"), "interconnect.network_bandwidth", where,
                        optional=True)
    return Interconnect(kind, bandwidth, str(link.get("source", "")), tables,
                        str(measured.get("date", "")), str(measured.get("method", "")),
                        str(measured.get("custom_method", "")), network,
                        str(link.get("network_source", "")))


def _parse_counts(raw: Any, name: str, where: str) -> dict[str, Table]:
    raw = _mapping(raw, name, where)
    out = {}
    for op, points in raw.items():
        if op not in TABLE_NAMES:
            raise _fail(where, f"{name}.{op} is not a collective; use {', '.join(TABLE_NAMES)}")
        if not isinstance(points, list) or not points:
            raise _fail(where, f"{name}.{op} must be a list of [bytes, seconds]")
        pairs = []
        for point in points:
            if not isinstance(point, list) or len(point) != 2:
                raise _fail(where, f"{name}.{op} must be a list of [bytes, seconds], "
                                   f"not {point!r}")
            pairs.append((_positive(point[0], f"{name}.{op}", where),
                          _positive(point[1], f"{name}.{op}", where)))
        out[op] = tuple(sorted(pairs))
    return out


def _mapping(raw: Any, name: str, where: str) -> Mapping:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(where, f"'{name}' must be a mapping")
    return raw


def _positive(value: Any, name: str, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        raise _fail(where, f"'{name}' is the string {value!r}; write numbers like 4.5e+11 "
                           "(PyYAML reads 4.5e11 as text)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise _fail(where, f"'{name}' must be a positive number, not {value!r}")
    return float(value)


def _fail(where: str, what: str) -> GpuProfileError:
    return GpuProfileError(f"GPU profile {where}: {what}; fix or regenerate the profile")
