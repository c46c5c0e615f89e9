"""GPU profiles: peak rates, bandwidth and memory as data with provenance, read from YAML.

A profile knows nothing of models. Datasheet profiles hold the vendor's dense figures; measured
profiles (written by `perfmodel calibrate-gpu`) add the spread of their peaks and the tables of
achieved kernel times that the estimate interpolates. Every field is type-checked on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.interconnect import Interconnect, parse_interconnect
from perfmodel.hardware.checks import Checker
from perfmodel.hardware.sustained import Curve, parse_sustained
from perfmodel.hardware.tables import AttentionTable, LinearTable, Tables, parse_tables
from perfmodel.hardware.yamlcache import YamlError, load_yaml

__all__ = ["PEAK_DTYPES", "GPU_DIR", "AttentionTable", "LinearTable", "Tables", "GpuSpec",
           "bundled_names", "load_gpu", "parse_gpu"]

PEAK_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
GPU_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "gpus"


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
    interconnect: Interconnect | None = None  # link and measured collectives (interconnect.py)
    # per dtype, ((burst seconds, fraction of the table rate), ...): matrix work held that long
    # under the power limit (perfmodel/calibrate/power.py); empty where not measured
    sustained: Mapping[str, Curve] = field(default_factory=dict)

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
        path = GPU_DIR / f"{name_or_path.lower()}.yaml"  # bundled names are lower case
        if not path.exists():
            raise GpuProfileError(f"unknown GPU {name_or_path!r}; use one of "
                                  f"{', '.join(bundled_names())}, or a profile .yaml path")
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "a device or other special file"
        raise GpuProfileError(f"{path} is not a profile YAML file ({what}); pass a .yaml "
                              "written by `perfmodel calibrate-gpu`, or a bundled GPU (`perfmodel "
                              "gpus`)")
    if not path.is_file():
        raise GpuProfileError(f"GPU profile {path} does not exist; run `perfmodel calibrate-gpu "
                              "--out` to write one, or name a bundled GPU")
    try:
        data = load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise GpuProfileError(f"cannot read GPU profile {path} ({exc}); pass a readable UTF-8 "
                              "profile YAML") from exc
    except YamlError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        why = f" ({exc.reason})" if exc.reason else ""
        raise GpuProfileError(f"GPU profile {path} is not valid YAML{where}{why}; fix or "
                              "regenerate it") from exc
    return parse_gpu(data, str(path))


def parse_gpu(data: Any, path: str = "<profile>") -> GpuSpec:
    """Check every field's type and build a GpuSpec; a bad field is one GpuProfileError."""
    if not isinstance(data, dict):
        raise GpuProfileError(f"GPU profile {path} must be a YAML mapping")
    check = Checker(path)
    peaks = check.mapping(data, "peak_flops")
    peak_flops = {k: check.number(peaks, k, optional=True, where="peak_flops")
                  for k in PEAK_DTYPES}
    if peak_flops["bf16"] is None:
        raise GpuProfileError(f"GPU profile {path}: peak_flops.bf16 is required")
    kind = check.text(data, "kind")
    if kind not in ("datasheet", "measured"):
        raise GpuProfileError(f"GPU profile {path}: kind must be datasheet or measured")
    reserved = {"name", "description", "kind", "source", "date", "method", "peak_flops",
                "mem_bandwidth", "mem_bytes", "datasheet", "tables", "interconnect", "collectives",
                "sustained"}
    return GpuSpec(
        name=check.text(data, "name"), description=check.text(data, "description"), kind=kind,
        source=check.text(data, "source"), date=str(data.get("date", "")),
        method=check.text(data, "method"), peak_flops=peak_flops,
        mem_bandwidth=check.number(data, "mem_bandwidth"), mem_bytes=check.number(data, "mem_bytes"),
        path=path, datasheet=data.get("datasheet"),
        tables=parse_tables(data.get("tables"), check, data.get("method_version", 1)),
        extra={k: v for k, v in data.items() if k not in reserved},
        interconnect=parse_interconnect(data, path),
        sustained=parse_sustained(data.get("sustained"), path))
