"""Measured engine profiles: one engine release on one GPU, as `perfmodel calibrate-engine` fits it.

A profile (configs/engines/<engine>-<version>-<gpu>.yaml) holds
- `settings`: what the engine's server log says it ran with (token budget, max sequences,
  memory fraction, CUDA-graph sizes, attention and MoE backends, KV-cache tokens per model);
  those that are scheduler knobs replace the preset's defaults (serve/engines.py);
- `host_overhead_s`: host time per step left visible (vLLM 0.26 schedules asynchronously, so
  its host work overlaps the GPU's), and `request_latency_s`: time a request spends outside the
  engine's steps before its first token reaches the client (HTTP, tokenization, the hop to the
  engine core, detokenization and streaming), each fitted on the profile's training half with
  its rule and data named under `fit`;
- `synchronous` (optional): the engine run with its scheduling synchronous (async scheduling
  off, as vLLM 0.26 runs draft-model and CPU-ngram speculation): `host_overhead_s`, the host
  time per forward then visible, measured on plain decode run that way (its rule and run named
  there), and `speculative_methods`, the methods that make the engine run so (from its code);
- `tables`: the engine's own kernels timed on that GPU (calibrate/engine_kernels.py), in the
  GPU profile's table format; they replace the GPU profile's tables of the same name for this
  engine's estimate (linear per dtype, attention per shape, the rest whole);
- `runs`: where the raw benchmark results and server logs are (docs/data/engines/...).

`serve --engine vllm` takes the newest profile of that engine measured on the GPU's datasheet
model (an H200 profile serves h200 and h200-measured), `--engine vllm@0.26.0` a given release,
`--engine vllm@published` (or a release no profile has, such as vllm@0.12) the preset fitted to
published rows of older releases, `--engine-profile FILE` a profile file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from perfmodel.errors import WorkloadError

ENGINE_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "engines"
KNOB_KEYS = ("max_num_seqs", "max_num_batched_tokens", "memory_fraction", "block_size",
             "chunked_prefill", "capture_sizes")
PUBLISHED = "published"


class EngineProfileError(WorkloadError):
    """An engine profile that is missing or malformed, or an engine spec that names none."""


@dataclass(frozen=True)
class EngineProfile:
    """One engine release measured on one GPU (module docstring); times in seconds."""

    engine: str
    version: str
    gpu: str  # the datasheet profile of the GPU it was measured on, e.g. h200
    device_name: str
    date: str
    path: str
    knobs: Mapping[str, Any]
    host_overhead_s: float
    request_latency_s: float
    tables: Mapping[str, Any] | None = field(default=None, repr=False)
    # host time per forward when the engine runs synchronously, and the speculative methods
    # with which it does (module docstring); None / () where the profile does not measure it
    sync_host_overhead_s: float | None = None
    sync_speculative: tuple[str, ...] = ()

    def host_overhead_for(self, speculative: str | None) -> tuple[float, bool]:
        """(host time per step, whether the engine runs synchronously) for a run with this
        speculative method (None: none)."""
        if speculative in self.sync_speculative and self.sync_host_overhead_s is not None:
            return self.sync_host_overhead_s, True
        return self.host_overhead_s, False

    @property
    def label(self) -> str:
        return f"{self.engine} {self.version} profile measured on {self.device_name} " \
               f"{self.date} ({display_path(self.path)})"


def display_path(path: str) -> str:
    """A bundled profile as configs/engines/NAME, any other as given."""
    file = Path(path).resolve()
    return f"configs/engines/{file.name}" if file.parent == ENGINE_DIR.resolve() else path


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.replace("-", ".").split("."))


def parse_profile(data: Any, path: str) -> EngineProfile:
    """An EngineProfile from a parsed YAML mapping, or one EngineProfileError naming the field."""
    def need(key: str, kind: type | tuple) -> Any:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            what = {dict: "a mapping", str: "text"}.get(kind, "a number")
            raise EngineProfileError(f"engine profile {path}: '{key}' is missing or not "
                                     f"{what}; regenerate it with `perfmodel calibrate-engine "
                                     "--profile`")
        return value

    settings = need("settings", dict)
    knobs = {k: settings[k] for k in KNOB_KEYS if settings.get(k) is not None}
    if "capture_sizes" in knobs:
        knobs["capture_sizes"] = tuple(int(s) for s in knobs["capture_sizes"])
    host = float(need("host_overhead_s", (int, float)))
    latency = float(need("request_latency_s", (int, float)))
    if not (0 <= host < 1 and 0 <= latency < 10):
        raise EngineProfileError(f"engine profile {path}: host_overhead_s and "
                                 "request_latency_s must be seconds in [0, 1) and [0, 10)")
    sync = data.get("synchronous")
    sync_host, sync_methods = None, ()
    if sync is not None:
        ok = isinstance(sync, dict) and isinstance(sync.get("host_overhead_s"), (int, float)) \
            and not isinstance(sync.get("host_overhead_s"), bool) \
            and 0 <= sync["host_overhead_s"] < 1 \
            and isinstance(sync.get("speculative_methods", []), list) \
            and all(isinstance(m, str) for m in sync.get("speculative_methods", []))
        if not ok:
            raise EngineProfileError(f"engine profile {path}: 'synchronous' must map "
                                     "host_overhead_s (seconds in [0, 1)) and "
                                     "speculative_methods (a list of method names)")
        sync_host = float(sync["host_overhead_s"])
        sync_methods = tuple(sync.get("speculative_methods", []))
    return EngineProfile(
        engine=need("engine", str), version=str(need("version", (str, int, float))),
        gpu=need("gpu", str), device_name=str(data.get("device_name", "")),
        date=str(data.get("date", "")), path=path, knobs=knobs, host_overhead_s=host,
        request_latency_s=latency, tables=data.get("tables") or None,
        sync_host_overhead_s=sync_host, sync_speculative=sync_methods)


@functools.cache
def load_profile(path: str) -> EngineProfile:
    from perfmodel.hardware.yamlcache import load_yaml

    file = Path(path)
    if not file.is_file():
        raise EngineProfileError(f"--engine-profile {path}: no such file; pass a YAML written "
                                 "by `perfmodel calibrate-engine --profile`")
    try:
        data = load_yaml(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EngineProfileError(f"engine profile {path} cannot be read ({type(exc).__name__}); "
                                 "regenerate it with `perfmodel calibrate-engine`") from None
    return parse_profile(data, str(file))


def bundled_profiles() -> tuple[EngineProfile, ...]:
    return tuple(load_profile(str(p)) for p in sorted(ENGINE_DIR.glob("*.yaml")))


def split_engine(spec: str) -> tuple[str, str | None]:
    """'vllm@0.26.0' -> ('vllm', '0.26.0'); 'vllm' -> ('vllm', None)."""
    name, _, version = spec.partition("@")
    return name.strip().lower(), (version.strip() or None) if _ else None


def select_profile(spec: str, gpu_key: str, path: str | None = None
                   ) -> tuple[str, EngineProfile | None]:
    """(engine name, the measured profile to use or None for the published-row preset).

    gpu_key: the GPU's datasheet profile name (a measured profile's `datasheet`, else its own
    name). A version no bundled profile has for this GPU means the published-row preset when
    the engine has one (a release those rows came from), so `vllm@0.12` reads as it always did.
    """
    name, version = split_engine(spec)
    if path is not None:
        profile = load_profile(path)
        if version is not None or name != profile.engine:
            raise EngineProfileError(f"--engine-profile {path} is a {profile.engine} "
                                     f"{profile.version} profile; drop --engine {spec} or "
                                     f"pass --engine {profile.engine}")
        return name, profile
    if version == PUBLISHED:
        return name, None
    def release(p: EngineProfile) -> bool:
        return version is None or p.version == version or p.version.startswith(version + ".")

    ours = [p for p in bundled_profiles() if p.engine == name and release(p)]
    mine = [p for p in ours if p.gpu == gpu_key]
    if not mine and version is not None and ours:
        where = ", ".join(sorted({p.gpu for p in ours}))
        raise EngineProfileError(
            f"--engine {spec}: that release was measured on {where}, not {gpu_key}; use "
            f"--engine {name}@published, or measure this GPU with `perfmodel calibrate-engine`")
    if not mine:
        return name, None
    return name, max(mine, key=lambda p: _version_key(p.version))


def gpu_key(gpu) -> str:
    """The datasheet name a GPU profile stands for (h200-measured -> h200)."""
    return (gpu.datasheet or gpu.name).lower()


_MERGED: dict[tuple[str, str], Any] = {}


def with_engine_tables(gpu, profile: EngineProfile | None):
    """gpu with the profile's kernel tables in place of its own of the same name (module
    docstring); gpu itself when either has no tables or the GPU's YAML is not at hand."""
    if profile is None or not profile.tables or gpu.tables is None or not Path(gpu.path).is_file():
        return gpu
    key = (gpu.path, profile.path)
    if key not in _MERGED:
        from perfmodel.hardware.gpu import parse_gpu
        from perfmodel.hardware.yamlcache import load_yaml

        raw = load_yaml(Path(gpu.path).read_text(encoding="utf-8"))
        tables = merge_tables(raw.get("tables") or {}, profile.tables)
        merged = parse_gpu({**raw, "tables": tables}, gpu.path)
        _MERGED[key] = replace(merged, extra={**merged.extra,
                                              "engine_tables": profile.label})
    return _MERGED[key]


def merge_tables(gpu_tables: Mapping, engine_tables: Mapping) -> dict:
    """The GPU profile's tables with the engine's: linear per dtype, attention per shape (phase,
    kind, heads, KV heads, head dims, window, sinks), any other table whole; tables the GPU
    profile's parser does not know (fused_moe) are left out."""
    merged = dict(gpu_tables)
    for name, table in engine_tables.items():
        if name == "linear":
            merged["linear"] = {**gpu_tables.get("linear", {}), **table}
        elif name == "attention":
            def key(t: Mapping) -> tuple:
                return tuple(t.get(k) for k in ("phase", "kind", "heads", "kv_heads",
                                                "head_dim", "v_head_dim", "window", "sinks"))
            ours = {key(t): t for t in table}
            merged["attention"] = [ours.pop(key(t), t) for t in gpu_tables.get("attention", [])] \
                + list(ours.values())
        elif name in gpu_tables:
            merged[name] = table
    return merged
