"""A measured GPU profile as YAML: assemble it, format every number, write it atomically.

The schema is the one `perfmodel.hardware.gpu.load_gpu` reads (see docs/calibration.md). Floats are
written to 4 significant digits, always with a '.' and a signed exponent (3.021e+12), because
PyYAML reads 3.0e12 as a string; the text is read back before it is written and must equal
what was meant. The file is replaced atomically (temp file in the same folder, fsync,
os.replace), so an interrupted run leaves an existing profile as it was.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from perfmodel.calibrate.peaks import Peak
from perfmodel.hardware.gpu import PEAK_DTYPES, AttentionTable, Tables
from perfmodel.hardware.sustained import Curve

DIGITS = 4


@dataclass(frozen=True)
class Measurements:
    """Everything one calibration run measured, before it becomes YAML."""

    peaks: Mapping[str, Peak]  # by dtype; a dtype that could not run is absent
    bandwidth: Peak
    tables: Tables
    unsupported: Mapping[str, str]  # dtype -> why it could not run here
    notes: tuple[str, ...]
    run_time_s: float
    sustained: Mapping[str, Curve] = field(default_factory=dict)  # calibrate/power.py


def build_profile(*, name: str, description: str, date: str, mode: str, method_version: int,
                  datasheet: str | None, mem_bytes: int, environment: Mapping[str, Any],
                  measured: Measurements) -> dict:
    """The profile as plain data, in the schema's order."""
    data: dict[str, Any] = {
        "name": name, "description": description, "kind": "measured", "source": "measured",
        "date": date, "method": f"perfmodel calibrate-gpu v{method_version} ({mode})",
        "method_version": method_version}
    if datasheet:
        data["datasheet"] = datasheet
    data["mem_bytes"] = int(mem_bytes)
    data["mem_bandwidth"] = measured.bandwidth.value
    data["peak_flops"] = {d: (measured.peaks[d].value if d in measured.peaks else None)
                          for d in PEAK_DTYPES}
    data["spread"] = {what: _spread(peak) for what, peak in
                      [*measured.peaks.items(), ("mem_bandwidth", measured.bandwidth)]}
    data["unsupported"] = dict(measured.unsupported)
    data["environment"] = dict(environment)
    data["run_time_s"] = measured.run_time_s
    data["notes"] = list(measured.notes)
    if measured.sustained:
        data["sustained"] = sustained_data(measured.sustained)
    data["tables"] = tables_data(measured.tables)
    return data


def _spread(peak: Peak) -> dict:
    key = "best_bytes" if len(peak.best_shape) == 1 else "best_shape"
    value: Any = peak.best_shape[0] if len(peak.best_shape) == 1 else list(peak.best_shape)
    return {"min": peak.spread.min, "median": peak.spread.median, "max": peak.spread.max,
            key: value, "sweep": [[size, rate] for size, rate in peak.sweep]}


def sustained_data(curves: Mapping[str, Curve]) -> dict:
    """The power-limit curves as the YAML mapping `perfmodel.hardware.sustained.parse_sustained`
    reads back."""
    return {"source": "perfmodel calibrate-gpu (perfmodel/calibrate/power.py)",
            **{dtype: {"burst_s": [b for b, _ in curve], "fraction": [f for _, f in curve]}
               for dtype, curve in curves.items()}}


def tables_data(tables: Tables) -> dict:
    """gpu.Tables as the YAML mapping `perfmodel.hardware.gpu._parse_tables` reads back."""
    data: dict[str, Any] = {"linear": {
        dtype: {"m": list(t.ms), "k_n": [list(s) for s in t.shapes],
                "seconds": [list(row) for row in t.seconds]}
        for dtype, t in tables.linear.items()}}
    data["quant_in_linear"] = tables.quant_in_linear
    data["attention"] = [attention_data(t) for t in _attention_tables(tables)]
    data["elementwise"] = {"bytes": [round(b) for b, _ in tables.elementwise],
                           "seconds": [s for _, s in tables.elementwise]}
    data["launch"] = {"graph_s": tables.graph_launch_s, "eager_s": tables.eager_launch_s}
    data["rmsnorm"] = {"points": [list(p) for p in tables.rmsnorm]}
    data["strided"] = {"bytes": [round(b) for b, _ in tables.strided],  # exact, not 4 digits
                       "seconds": [s for _, s in tables.strided]}
    for key in ("rope", "silu_mul"):
        pairs = getattr(tables, key)
        data[key] = {"bytes": [round(b) for b, _ in pairs], "seconds": [s for _, s in pairs]}
    if tables.routing_shape is not None:  # (E, k) says what routing and sort were measured at
        shape = {"experts": tables.routing_shape[0], "top_k": tables.routing_shape[1]}
        data["routing"] = {**shape, "points": [list(p) for p in tables.routing]}
        data["sort"] = {**shape, "points": [list(p) for p in tables.sort]}
    data["grouped"] = {dtype: {"points": [list(p) for p in points]}
                       for dtype, points in tables.grouped.items()}
    data["act_quant"] = {key: {"points": [list(p) for p in points]}
                         for key, points in tables.act_quant.items()}
    data["moe_block"] = {"points": [list(p) for p in tables.moe_block]}
    return data


def attention_data(table: AttentionTable) -> dict:
    """One entry of tables.attention, every field written."""
    return {"phase": table.phase, "kind": table.kind, "heads": table.heads,
            "kv_heads": table.kv_heads, "head_dim": table.head_dim,
            "v_head_dim": table.v_head_dim, "window": table.window, "sinks": table.sinks,
            "points": [list(p) for p in table.points]}


def _attention_tables(tables: Tables) -> tuple[AttentionTable, ...]:
    """tables.attention, or the two reference tables where only they are set (by hand)."""
    if tables.attention:
        return tables.attention
    return tuple(replace(t, phase=phase) for phase, t in
                 (("prefill", tables.attention_prefill), ("decode", tables.attention_decode))
                 if t is not None)


def format_float(value: float, digits: int = DIGITS) -> str:
    """A float as YAML 1.1 reads it back as a float: '3.021e+12', '1.0e-05', '12.5', '7.0'."""
    if not math.isfinite(value):
        raise ValueError(f"a profile holds finite numbers only, not {value!r}; use null")
    text = f"{value:.{digits}g}"
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes floats with format_float."""


_Dumper.add_representer(
    float, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:float",
                                                         format_float(value)))


def normalized(data: Any) -> Any:
    """data as the YAML round trip gives it back: floats rounded, tuples as lists."""
    if isinstance(data, float):
        return float(format_float(data))
    if isinstance(data, Mapping):
        return {k: normalized(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [normalized(v) for v in data]
    return data


def dump_yaml(data: Mapping[str, Any], header: str = "") -> str:
    """YAML text of the profile; raises if reading it back does not give the same values."""
    text = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=100, allow_unicode=True)
    if yaml.safe_load(text) != normalized(dict(data)):
        raise ValueError("profile YAML does not read back as written (a number became text?)")
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def atomic_write(path: Path, chunks: Iterable[str]) -> Path:
    """Write chunks to path all or nothing: a temp file beside it, fsync, then os.replace.

    If writing raises (or the process dies) the old file, if any, stays as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_profile(path: Path, data: Mapping[str, Any]) -> Path:
    header = (f"GPU profile measured by `perfmodel calibrate-gpu` ({data.get('method', '')}).\n"
              "SI units: FLOP/s, byte/s, bytes, seconds. Regenerate rather than edit.")
    return atomic_write(path, [dump_yaml(data, header)])
