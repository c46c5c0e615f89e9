"""The time of a collective op: its limit from the link, its estimate from measured NCCL tables.

limit = count · f · bytes / link bandwidth per direction, with the ring factors of nccl-tests'
bus bandwidth: f = 2(n−1)/n for all-reduce, (n−1)/n for all-gather, reduce-scatter and
all-to-all, 1 for send/recv. No latency term: the limit is a floor no NCCL run can beat.

estimate = the measured table of this GPU count, interpolated in log-log between its points
(the smallest point is the latency floor below it; beyond the largest, the last point's
bandwidth). A GPU count not measured is scaled from the nearest measured one: latency floor
kept, the rest by the ratio of ring factors. A profile without tables borrows those of its own
measured twin or of the nearest measured profile that has them, the part above the latency
floor scaled by the ratio of link bandwidths (as kernel tables are borrowed); it is flagged.
"""

from __future__ import annotations

import functools
import math
import re

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import GPU_DIR, GpuSpec, bundled_names, load_gpu
from perfmodel.hardware.interconnect import Interconnect, Table, parse_interconnect, sidecar_path
from perfmodel.cost.ops import Op
from perfmodel.cost.roofline import OpCost


def ring_factor(collective: str, gpus: int) -> float:
    """Bytes each GPU sends per byte of buffer: 2(n−1)/n, (n−1)/n, or 1 for send/recv."""
    if collective == "send_recv":
        return 1.0
    share = (gpus - 1) / gpus
    return 2 * share if collective == "all_reduce" else share


def link_of(gpu: GpuSpec) -> Interconnect | None:
    """gpu's interconnect, or its datasheet profile's where the measured one names none."""
    link = gpu.interconnect
    if (link is None or link.bandwidth is None) and gpu.datasheet:
        sheet = load_gpu(gpu.datasheet).interconnect
        if sheet is not None:
            link = sheet if link is None else Interconnect(
                sheet.kind, sheet.bandwidth, sheet.source, link.tables, link.date, link.method)
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


def tables_for(gpu: GpuSpec) -> tuple[Interconnect | None, float, str | None]:
    """(the link whose tables estimate gpu, bandwidth ratio source/target, flag or None)."""
    own = link_of(gpu)
    if own is not None and own.tables:
        return own, 1.0, None
    target = own.bandwidth if own is not None else None
    candidates = _measured_links()
    if not candidates or not target:
        return None, 1.0, None
    twin = [c for c in candidates if c[1] == gpu.name or c[1] == gpu.datasheet]
    name, _, link = twin[0] if twin else min(
        candidates, key=lambda c: abs(math.log(c[2].bandwidth / target)))
    return link, link.bandwidth / target, (f"collective estimates borrowed from {name} "
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


def collective_cost(op: Op, gpu: GpuSpec, estimate: bool) -> OpCost:
    """The OpCost of a collective op: shape (n,), weight_dtype the collective's name."""
    gpus, collective = int(op.shape[0]), op.weight_dtype
    wire = op.count * ring_factor(collective, gpus) * op.bytes / bandwidth_of(gpu)
    est = None
    if estimate:
        link, ratio, _ = tables_for(gpu)
        one = estimate_seconds(link, collective, gpus, op.bytes, ratio) if link else None
        est = None if one is None else op.count * one
    return OpCost(op, 0.0, wire, wire, est)
