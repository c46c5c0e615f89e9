"""The result of one serve run as frozen records (docs/json.md, `perfmodel serve --json`).

ServeResult holds what run_serve found: the latency distributions (TTFT, TPOT, ITL, E2E, in
seconds), the limit's, the throughput, the KV cache's use, the workload, the engine profile and
power-limit provenance, and the blocks a feature adds (goodput, speculative, prefix_cache, fleet,
disagg; None when the feature is off). Each record's field names are the JSON keys and its field
order is the document's: `to_dict()` writes the --json document (the one place it is written),
`from_dict()` reads one back. run_serve (and serve/disagg.py's run_disagg) build the result
field by field; the figures and blocks other modules compute as dicts (serve/metrics.py, slo.py,
fleet.py, drafter.py, prefix_cache.py, disagg.py) enter through from_dict, which refuses an
unknown key, so a key added to one of them without a field here fails at once instead of
vanishing. Mappings and sequences inside are read-only (MappingProxyType, tuples), so a result
cannot change after run_serve returns it.
"""

from __future__ import annotations

import functools
import json
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar


def _freeze(value: Any) -> Any:
    """value with every dict made a read-only mapping and every list a tuple, at any depth."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """The JSON-ready form of a field: records and mappings as dicts, tuples as lists."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _build(hint: Any, value: Any) -> Any:
    """value (from a JSON-ready dict) as the type `hint` names: a Record, a tuple of them, a
    mapping to them, or a plain value frozen."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        records = [a for a in args if isinstance(a, type) and issubclass(a, Record)]
        return _build(records[0], value) if records else _freeze(value)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_build(args[0], v) for v in value)
    if origin is Mapping and len(args) == 2:
        return MappingProxyType({k: _build(args[1], v) for k, v in value.items()})
    return _freeze(value)


@functools.lru_cache(maxsize=None)  # one entry per Record class of this module
def _hints(cls: type) -> dict[str, Any]:
    """Each field's type, its annotation evaluated (from __future__ annotations are strings)."""
    hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
    return {f.name: hints[f.name] for f in fields(cls)}


class Record:
    """A frozen dataclass whose fields are the keys of one JSON object, in its order."""

    # fields left out of the document while None (the blocks of features that are off)
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)  # type: ignore
                if not (f.name in self.OMIT_NONE and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]):
        hints = _hints(cls)
        unknown = [k for k in doc if k not in hints]
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}")
        return cls(**{k: _build(hints[k], v) for k, v in doc.items()})


@dataclass(frozen=True)
class Distribution(Record):
    """A latency's mean and percentiles in seconds (None over no requests)."""

    mean: float | None
    median: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class Limit(Record):
    """What no engine on this hardware can beat for these requests (docs/serving.md)."""

    ttft_s: Distribution
    tpot_s: Distribution
    e2e_s: Distribution


@dataclass(frozen=True)
class Throughput(Record):
    """Requests and output tokens per second over the whole run; per user: 1 / mean TPOT."""

    requests_s: float | None
    output_tok_s: float | None
    output_tok_s_per_gpu: float | None
    output_tok_s_per_user: float | None


@dataclass(frozen=True)
class KvUse(Record):
    """The KV cache of one scheduler: its size and the run's peak use."""

    blocks: int
    peak_blocks_used: int
    peak_fraction: float
    block_size: int
    tokens: int
    bytes_per_token: int


@dataclass(frozen=True)
class Parallelism(Record):
    """The deployment's layout: TP, PP, EP, DP, its GPUs and schedulers."""

    tp: int
    pp: int
    ep: int
    dp: int
    gpus: int
    schedulers: int


@dataclass(frozen=True)
class Workload(Record):
    """The load and lengths served. isl and osl are None where lengths came from a file or a
    trace; `options` holds the keys a workload option adds only when used (burstiness, lengths,
    trace_in, prefix_len, num_prefixes: docs/json.md), in the document's order."""

    concurrency: int | None
    request_rate: float | None
    num_requests: int
    warmup: int
    lock_step: bool
    isl: int | None
    osl: int | None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _freeze(self.options))

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        options = doc.pop("options")
        return {**doc, **options}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Workload:
        names = {f.name for f in fields(cls)} - {"options"}
        return cls(**{k: v for k, v in doc.items() if k in names},
                   options={k: v for k, v in doc.items() if k not in names})


@dataclass(frozen=True)
class EngineProfileRef(Record):
    """The measured engine profile serve used (configs/engines/)."""

    engine: str
    version: str
    gpu: str
    date: str
    path: str


@dataclass(frozen=True)
class PowerLimit(Record):
    """The GPU profile's power-limit curve the step costs used: fraction of the table rate
    against seconds of matrix work."""

    dtype: str
    burst_s: tuple[float, ...]
    fraction: tuple[float, ...]


@dataclass(frozen=True)
class SloTargets(Record):
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None


@dataclass(frozen=True)
class GoodputClass(Record):
    targets: SloTargets
    requests: int
    met: int
    fraction: float | None
    requests_s: float | None


@dataclass(frozen=True)
class Goodput(Record):
    """Requests meeting their SLO targets (serve/slo.py), in all and per SLO class."""

    requests: int
    met: int
    fraction: float | None
    requests_s: float | None
    classes: Mapping[str, GoodputClass]


@dataclass(frozen=True)
class SpecBatch(Record):
    batch: int
    step_s: float
    plain_step_s: float
    speedup: float


@dataclass(frozen=True)
class Speculative(Record):
    """The drafter and the decode step's speedup against batch size (serve/drafter.py)."""

    method: str
    spec_tokens: int
    acceptance: float
    draft_model: str | None
    draft_overhead_s: float | None
    drafter: str
    drafter_weights_bytes: float
    context_tokens: float
    crossover_batch: int | None
    below_one: tuple[tuple[int, int], ...]
    per_batch: tuple[SpecBatch, ...]


@dataclass(frozen=True)
class PrefixCacheUse(Record):
    """What the prefix cache saved (serve/prefix_cache.py)."""

    enabled: bool
    granularity_tokens: int | None
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float | None
    prefill_tokens_saved: int
    evicted_tokens: int


@dataclass(frozen=True)
class ReplicaUse(Record):
    requests: int
    output_tokens: int
    busy_fraction: float | None
    steps: int
    preemptions: int
    peak_kv_blocks_used: int
    peak_kv_fraction: float


@dataclass(frozen=True)
class Fleet(Record):
    """Replicas behind a router (serve/fleet.py) and each one's load."""

    replicas: int
    router: str
    replicas_per_gpu: int
    gpus: int
    per_replica: tuple[ReplicaUse, ...]


@dataclass(frozen=True)
class DisaggPool(Record):
    workers: int
    tp: int
    ep: int
    dp: int
    gpus: int
    schedulers: int
    busy_fraction: float
    kv_blocks: int
    block_size: int
    peak_kv_fraction: float


@dataclass(frozen=True)
class DecodePool(DisaggPool):
    mean_batch: float | None


@dataclass(frozen=True)
class KvTransfer(Record):
    link: str
    bandwidth: float
    source: str
    bytes_per_token: float
    mean_bytes: float
    mean_s: float
    limit_mean_s: float | None
    measured_table: bool


@dataclass(frozen=True)
class Disagg(Record):
    """A disaggregated deployment's pools, their load and the KV transfer (serve/disagg.py)."""

    layout: str
    gpus: int
    prefill: DisaggPool
    decode: DecodePool
    kv_transfer: KvTransfer


@dataclass(frozen=True, kw_only=True)
class ServeResult(Record):
    """One serve run's figures, SI units; the fields in the order of the --json document."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset(
        {"disagg", "goodput", "speculative", "prefix_cache", "fleet"})

    model: str
    gpu: str
    engine: str
    precision: str
    parallel: Parallelism
    workload: Workload
    requests: int
    ttft_s: Distribution
    tpot_s: Distribution
    itl_s: Distribution
    e2e_s: Distribution
    limit: Limit
    throughput: Throughput
    duration_s: float | None
    steps: int
    kv_cache: KvUse
    preemptions: int
    disagg: Disagg | None = None
    host_overhead_s: float
    request_latency_s: float
    engine_profile: EngineProfileRef | None
    power_limit: PowerLimit | None
    estimate_note: str
    goodput: Goodput | None = None
    speculative: Speculative | None = None
    prefix_cache: PrefixCacheUse | None = None
    fleet: Fleet | None = None

    def to_json(self) -> str:
        """The --json document (without the command's warnings); NaN or inf refused."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def columns(self) -> dict[str, Any]:
        """One flat row of the run's figures, as a sweep or plan writes them: each scalar
        field, each record's scalar fields as `<field>_<name>` (nested records and lists left
        out), the power limit as its dtype; model, gpu, engine, precision and workload are the
        grid point's own columns."""
        row: dict[str, Any] = {}
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if name in ("model", "gpu", "engine", "precision", "workload") or (
                    name in self.OMIT_NONE and value is None):
                continue
            if name == "power_limit":
                row[name] = value and value.dtype
            elif isinstance(value, Record):
                row.update({f"{name}_{g.name}": getattr(value, g.name) for g in fields(value)
                            if not isinstance(getattr(value, g.name), (Record, Mapping, tuple))})
            elif not isinstance(value, tuple):
                row[name] = value
        return row


def run_figures(doc: Mapping[str, Any], **kv_plan: int) -> dict[str, Any]:
    """The simulation's figures as ServeResult's fields: doc is serve/metrics.py's dict (its
    limit the bounds, NaN already None); kv_plan the pool's block_size, tokens and
    bytes_per_token beside the run's use of it."""
    return {"requests": doc["requests"],
            **{k: Distribution.from_dict(doc[k]) for k in ("ttft_s", "tpot_s", "itl_s", "e2e_s")},
            "limit": Limit.from_dict(doc["limit"]),
            "throughput": Throughput.from_dict(doc["throughput"]),
            "duration_s": doc["duration_s"], "steps": doc["steps"],
            "kv_cache": KvUse.from_dict({**doc["kv_cache"], **kv_plan}),
            "preemptions": doc["preemptions"]}
