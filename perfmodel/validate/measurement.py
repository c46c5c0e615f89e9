"""What one measurement of the torch-cudagraph engine is, and the pure functions that reduce it.

Nothing here imports torch: the records, the replay count, and the attribution of profiled kernels
to op names are plain Python, unit-tested on the CPU.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from perfmodel.cost.precision import preset
from perfmodel.model.spec import ModelSpec

PHASES = ("prefill", "decode")
ATTENTION_OPS = ("attn_norm", "qkv", "qk_norm", "rope", "kv_write", "attention", "o_proj",
                 "attn_residual")
DENSE_OPS = ("mlp_norm", "gate_up", "act", "down", "mlp_residual")
MOE_OPS = ("mlp_norm", "router", "experts_gate_up", "experts_act", "experts_down",
           "shared_gate_up", "shared_act", "shared_down", "experts_combine", "mlp_residual")
ONCE_OPS = ("embed", "final_norm", "lm_head")
ALL_OPS = tuple(dict.fromkeys(ONCE_OPS + ATTENTION_OPS + DENSE_OPS + MOE_OPS))
OTHER = "other"  # kernels launched outside every named region (none are expected)
KERNEL_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
# How the engine quantized W8A8 activations under method 1 (validate/timing.py METHOD), whose
# records name no scheme (validate/linear.py from e18b5b7 to b98ce42): fp8 with one amax over
# the tensor, int8 with one amax per token row.
METHOD_1 = "torch-cudagraph 1:"
UNRECORDED_SCHEMES = {"fp8": "dynamic-tensor", "int8": "dynamic-token"}
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")


@dataclass(frozen=True)
class Measurement:
    """One timed forward of the engine, in seconds.

    tokens is T (new tokens per sequence) for prefill and C (cached tokens per sequence, the new
    one included) for decode. seconds is the median CUDA-graph replay of the whole forward; samples
    are all timed replays. op_seconds sums, over the layers, the kernel time of each op name in
    one eager forward under the profiler; op_kernels counts each op's kernels (device copies and
    sets included) in that forward, and kernels is their total.
    """

    phase: str
    batch: int
    tokens: int
    seconds: float
    samples: tuple[float, ...]
    op_seconds: Mapping[str, float] = field(default_factory=dict)
    kernels: int = 0
    op_kernels: Mapping[str, int] = field(default_factory=dict)

    @property
    def kernel_seconds(self) -> float:
        """Sum of all kernel durations in one forward: the graph replay minus its gaps."""
        return sum(self.op_seconds.values())

    @property
    def seconds_str(self) -> str:
        return f"{self.seconds * 1e3:.3f} ms"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict in base units."""
        return {"phase": self.phase, "batch": self.batch, "tokens": self.tokens,
                "seconds": self.seconds, "samples": list(self.samples),
                "op_seconds": dict(self.op_seconds), "kernels": self.kernels,
                "op_kernels": dict(self.op_kernels)}


def record_scheme(record: Mapping[str, Any]) -> str | None:
    """The activation quantization scheme a validate record was measured with, None where
    activations stay in the base dtype: its act_scheme; else, for a method 1 record (or one
    naming no method), the engine's fixed scheme of the time (UNRECORDED_SCHEMES); else the
    precision's default, which the engine builds from (cost.precision.preset)."""
    if "act_scheme" in record:
        return record["act_scheme"]
    if str(record.get("method") or METHOD_1).startswith(METHOD_1):
        return UNRECORDED_SCHEMES.get(str(record.get("precision")))
    return preset(str(record["precision"])).act_scheme


def op_names(spec: ModelSpec) -> tuple[str, ...]:
    """The region names a forward of this model runs, in execution order (each once)."""
    names = ["embed"]
    for layer, _ in spec.layers:
        attn = [n for n in ATTENTION_OPS if n != "qk_norm" or layer.attention.qk_norm]
        if layer.mlp.kind == "moe":
            mlp = [n for n in MOE_OPS
                   if not n.startswith("shared_") or layer.mlp.shared_intermediate_size]
        else:
            mlp = list(DENSE_OPS)
        names += attn + mlp
    names += ["final_norm", "lm_head"]
    return tuple(dict.fromkeys(names))


def replay_count(first_seconds: float) -> int:
    """How many timed replays to take after a warm-up replay of first_seconds.

    At least 10 (up to 100 for replays under 10 ms, about a second of replays); beyond 0.5 s a
    replay, about 5 s of replays but never fewer than 3.
    """
    if first_seconds <= 0:
        return 100
    if first_seconds <= 0.5:
        return max(10, min(100, round(1.0 / first_seconds)))
    return max(3, min(9, round(5.0 / first_seconds)))


def median(samples: Iterable[float]) -> float:
    values = list(samples)
    if not values:
        raise ValueError("no samples to reduce")
    return float(statistics.median(values))


def kernel_rows(events: list[dict[str, Any]],
                names: Iterable[str]) -> list[tuple[str, str, float]]:
    """(op name, kernel name, seconds) for each device activity in a Chrome trace's events.

    Each device activity (kernel, memcpy, memset) is linked through its `correlation` id to the
    runtime or driver call that launched it; the launch's CPU timestamp falls inside record_function
    ranges (`user_annotation` events on the same thread), and the innermost (shortest) one whose
    name is in `names` is the activity's op. Activities launched outside every such range get
    the op "other".
    """
    wanted = set(names)
    regions: dict[Any, list[tuple[float, float, float, str]]] = {}
    launches: dict[Any, tuple[Any, float]] = {}
    kernels: list[tuple[Any, str, float]] = []
    for event in events:
        if event.get("ph") != "X":
            continue
        cat = str(event.get("cat", "")).lower()
        args = event.get("args") or {}
        if cat == "user_annotation" and event.get("name") in wanted:
            start, dur = float(event["ts"]), float(event.get("dur", 0.0))
            regions.setdefault(event.get("tid"), []).append((start, start + dur, dur,
                                                             event["name"]))
        elif cat in LAUNCH_CATEGORIES and "correlation" in args:
            launches[args["correlation"]] = (event.get("tid"), float(event["ts"]))
        elif cat in KERNEL_CATEGORIES:
            kernels.append((args.get("correlation"), str(event.get("name", "")),
                            float(event.get("dur", 0.0)) * 1e-6))
    rows = []
    for correlation, kernel, seconds in kernels:
        launch = launches.get(correlation)
        op = OTHER if launch is None else _innermost(regions.get(launch[0], ()), launch[1])
        rows.append((op, kernel, seconds))
    return rows


def attribute_kernels(events: list[dict[str, Any]],
                      names: Iterable[str]) -> tuple[dict[str, float], dict[str, int]]:
    """Kernel seconds and kernel counts per op name (kernel_rows, summed by op)."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for op, _, duration in kernel_rows(events, names):
        seconds[op] = seconds.get(op, 0.0) + duration
        counts[op] = counts.get(op, 0) + 1
    return seconds, counts


def _innermost(regions: Iterable[tuple[float, float, float, str]], ts: float) -> str:
    best, best_dur = OTHER, float("inf")
    for start, end, dur, name in regions:
        if start <= ts <= end and dur < best_dur:
            best, best_dur = name, dur
    return best
