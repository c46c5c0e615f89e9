"""The time of a collective op: its limit from the link, its estimate from measured tables.

limit = count · f · bytes / link bandwidth per direction, with the ring factors of nccl-tests'
bus bandwidth: f = 2(n−1)/n for all-reduce, (n−1)/n for all-gather, reduce-scatter and
all-to-all, 1 for send/recv. No latency term: the limit is a floor no NCCL run can beat.

estimate = the measured table of this GPU count, interpolated in log-log between its points
(the smallest point is the latency floor below it; beyond the largest, the last point's
bandwidth). A GPU count not measured is scaled from the nearest measured one: latency floor
kept, the rest by the ratio of ring factors. A profile without tables borrows those of its own
measured twin or of the nearest measured profile that has them, the part above the latency
floor scaled by the ratio of link bandwidths (as kernel tables are borrowed); it is flagged.

Custom all-reduce: where a serving engine's rule (cost/custom_allreduce.py: vLLM, SGLang,
TensorRT-LLM, with their sources) takes an all-reduce of this size, GPU count and link onto its
own one-shot/two-shot kernels, the estimate reads the custom_all_reduce table instead (measured
by calibrate-gpu --gpus through PyTorch symmetric memory), borrowed like the NCCL tables from
the profile that has one (flagged); with none anywhere it stays on NCCL's. The limit is the same
bytes over the link either way, and an estimate is never below its limit. Without an engine
(predict's torch and tuned presets) every collective is NCCL's.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import GPU_DIR, GpuSpec, bundled_names, load_gpu
from perfmodel.hardware.interconnect import Interconnect, Table, parse_interconnect, sidecar_path
from perfmodel.cost.custom_allreduce import CustomAllReduce, custom_allreduce_for
from perfmodel.cost.ops import Op
from perfmodel.cost.roofline import OpCost

CUSTOM = "custom_all_reduce"


def ring_factor(collective: str, gpus: int) -> float:
    """Bytes each GPU sends per byte of buffer: 2(n−1)/n (all-reduce, custom or NCCL),
    (n−1)/n, or 1 for send/recv."""
    if collective == "send_recv":
        return 1.0
    share = (gpus - 1) / gpus
    return 2 * share if collective in ("all_reduce", CUSTOM) else share


def link_of(gpu: GpuSpec) -> Interconnect | None:
    """gpu's interconnect, or its datasheet profile's where the measured one names none."""
    link = gpu.interconnect
    if (link is None or link.bandwidth is None) and gpu.datasheet:
        sheet = load_gpu(gpu.datasheet).interconnect
        if sheet is not None:
            link = sheet if link is None else replace(
                link, kind=sheet.kind, bandwidth=sheet.bandwidth, source=sheet.source)
    return link


def bandwidth_of(gpu: GpuSpec) -> float:
    link = link_of(gpu)
    if link is None or link.bandwidth is None:
        raise GpuProfileError(f"{gpu.name} has no interconnect bandwidth; add an interconnect: "
                              "block (kind, bandwidth per direction, source) to its profile")
    return link.bandwidth


def _sidecar_link(name: str) -> tuple[str, str | None, Interconnect] | None:
    """The measured link of bundled profile `name` read from its collectives sidecar alone
    (the profile's kernel tables are not parsed), or None when the sidecar holds no tables."""
    path = GPU_DIR / f"{name}.yaml"
    if not sidecar_path(str(path)).is_file():
        return None
    link = parse_interconnect({}, str(path))
    if link is None or not link.tables or not link.bandwidth:
        return None
    sheet = re.search(r"^datasheet:\s*([\w.-]+)", path.read_text(), re.M)
    return name, sheet.group(1) if sheet else None, link


@functools.cache
def _measured_links() -> tuple[tuple[str, str | None, Interconnect], ...]:
    """(profile, its datasheet, link) of every bundled profile with measured collectives: from
    the sidecars (calibrate-gpu --gpus writes there), else the profiles' own blocks."""
    out = [link for link in map(_sidecar_link, bundled_names()) if link is not None]
    if out:
        return tuple(out)
    for name in bundled_names():
        gpu = load_gpu(name)
        link = link_of(gpu)
        if link is not None and link.tables and link.bandwidth:
            out.append((gpu.name, gpu.datasheet, link))
    return tuple(out)


def _has(link: Interconnect, collective: str | None) -> bool:
    """Whether link holds tables (of `collective`, where one is named)."""
    return any(collective is None or collective in per for per in link.tables.values())


def tables_for(gpu: GpuSpec, collective: str | None = None
               ) -> tuple[Interconnect | None, float, str | None]:
    """(the link whose tables estimate gpu, bandwidth ratio source/target, flag or None);
    collective names a table the link must hold (None: any, as the NCCL tables come together)."""
    own = link_of(gpu)
    if own is not None and _has(own, collective):
        return own, 1.0, None
    target = own.bandwidth if own is not None else None
    candidates = [c for c in _measured_links() if _has(c[2], collective)]
    if not candidates or not target:
        return None, 1.0, None
    twin = [c for c in candidates if c[1] == gpu.name or c[1] == gpu.datasheet]
    name, _, link = twin[0] if twin else min(
        candidates, key=lambda c: abs(math.log(c[2].bandwidth / target)))
    what = "custom all-reduce" if collective == CUSTOM else "collective"
    return link, link.bandwidth / target, (f"{what} estimates borrowed from {name} "
                                           "(scaled by the link bandwidth ratio)")


def table_seconds(table: Table, nbytes: float) -> float:
    """Log-log interpolation; the first point below the table, the last bandwidth above it."""
    if nbytes <= table[0][0]:
        return table[0][1]
    if nbytes >= table[-1][0]:
        b, s = table[-1]
        return s * nbytes / b
    for (b0, s0), (b1, s1) in zip(table, table[1:]):
        if b0 <= nbytes <= b1:
            w = math.log(nbytes / b0) / math.log(b1 / b0)
            return math.exp(math.log(s0) + w * math.log(s1 / s0))
    raise AssertionError("unreachable")


def estimate_seconds(link: Interconnect, collective: str, gpus: int, nbytes: float,
                     ratio: float = 1.0) -> float | None:
    """One collective of nbytes over gpus GPUs, from link's tables (None without them)."""
    counts = [n for n in link.gpu_counts if collective in link.tables[n]]
    if not counts:
        return None
    near = min(counts, key=lambda n: (abs(math.log(n / gpus)), -n))
    table = link.tables[near][collective]
    floor, t = table[0][1], table_seconds(table, nbytes)
    scale = ratio * ring_factor(collective, gpus) / ring_factor(collective, near)
    return floor + max(t - floor, 0.0) * scale


def takes_custom(op: Op, gpu: GpuSpec, custom: CustomAllReduce | None,
                 row_bytes: float | None = None) -> bool:
    """Whether the engine rule `custom` runs this all-reduce op on its custom kernels (tokens =
    bytes / row_bytes, the bytes of one token's activations, where the rule counts tokens)."""
    if custom is None or op.weight_dtype != "all_reduce":
        return False
    link = link_of(gpu)
    tokens = op.bytes / row_bytes if row_bytes else None
    return custom.takes(int(op.shape[0]), op.bytes, link.kind if link else "unknown", tokens)


def _one_estimate(op: Op, gpu: GpuSpec, custom: CustomAllReduce | None,
                  row_bytes: float | None) -> float | None:
    """Seconds of one collective of op from the custom table where the engine takes it, else
    from NCCL's; None without tables."""
    gpus, collective = int(op.shape[0]), op.weight_dtype
    if takes_custom(op, gpu, custom, row_bytes):
        link, ratio, _ = tables_for(gpu, CUSTOM)
        if link is not None:
            return estimate_seconds(link, CUSTOM, gpus, op.bytes, ratio)
    link, ratio, _ = tables_for(gpu)
    return estimate_seconds(link, collective, gpus, op.bytes, ratio) if link else None


def collective_cost(op: Op, gpu: GpuSpec, estimate: bool, custom: CustomAllReduce | None = None,
                    row_bytes: float | None = None) -> OpCost:
    """The OpCost of a collective op: shape (n,), weight_dtype the collective's name; custom the
    serving engine's all-reduce rule (None: NCCL), row_bytes one token's activation bytes."""
    gpus, collective = int(op.shape[0]), op.weight_dtype
    wire = op.count * ring_factor(collective, gpus) * op.bytes / bandwidth_of(gpu)
    est = None
    if estimate:
        one = _one_estimate(op, gpu, custom, row_bytes)
        est = None if one is None else max(op.count * one, wire)
    return OpCost(op, 0.0, wire, wire, est)


@dataclass(frozen=True, eq=False)
class EngineComm:
    """The collectives of one step under an engine's all-reduce rule (custom None: NCCL's):
    called on a collective op, its OpCost; fused_norms, the norms that run inside it."""

    gpu: GpuSpec
    estimate: bool
    custom: CustomAllReduce | None
    row_bytes: float  # one token's activation bytes (the rule may count tokens)

    def __call__(self, op: Op) -> OpCost:
        return collective_cost(op, self.gpu, self.estimate, self.custom, self.row_bytes)

    def fused_norms(self, ops) -> tuple[str, ...]:
        """The norms of a step's ops (its forward with collectives) that the engine runs inside
        its all-reduce: TensorRT-LLM's residual + RMSNorm, where its custom kernels take the
        step's TP all-reduce (custom_allreduce.py); none otherwise."""
        fused = self.custom.fused_norms if self.custom else ()
        if fused and any(op.name == "attn_all_reduce" and
                         takes_custom(op, self.gpu, self.custom, self.row_bytes) for op in ops):
            return fused
        return ()


def engine_comm(engine: str | None, gpu: GpuSpec, estimate: bool, row_bytes: float
                ) -> EngineComm | None:
    """The collectives under serving engine `engine`'s own all-reduce rule, as `serve` costs
    them (predict --engine vllm|sglang|trtllm); None (NCCL) for the other presets."""
    custom = custom_allreduce_for(engine)
    return None if custom is None else EngineComm(gpu, estimate, custom, row_bytes)
