"""A disaggregated deployment's layout and link: the two pools (P prefill workers of TPa·EPa·DPa
GPUs, D decode workers of TPb·EPb·DPb), their compact form `PxTPa:DxTPb`, and the link the KV
cache crosses between them with the bytes a request sends (docs/serving.md, "Disaggregated
prefill and decode"). The co-simulation of the pools is serve/disagg.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from perfmodel.errors import WorkloadError

NODE_GPUS = 8  # GPUs in one HGX/DGX node (H100, H200, B200 SXM baseboards)
LINKS = ("auto", "nvlink", "network")
_SPEC = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*:\s*(\d+)\s*[x×]\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pools:
    """The two pools: workers and each worker's TP, EP and attention-DP sizes."""

    prefill_workers: int = 1
    prefill_tp: int = 1
    prefill_ep: int = 1
    prefill_dp: int = 1
    decode_workers: int = 1
    decode_tp: int = 1
    decode_ep: int = 1
    decode_dp: int = 1

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise WorkloadError(f"--{name.replace('_', '-')} must be a whole number ≥ 1, "
                                    f"not {value!r}")

    @property
    def prefill_gpus(self) -> int:
        return self.prefill_workers * self.prefill_tp * self.prefill_dp

    @property
    def decode_gpus(self) -> int:
        return self.decode_workers * self.decode_tp * self.decode_dp

    @property
    def gpus(self) -> int:
        return self.prefill_gpus + self.decode_gpus

    @property
    def compact(self) -> str:
        """The --disagg form P x TPa : D x TPb (EP and DP, where set, are not in it)."""
        return (f"{self.prefill_workers}x{self.prefill_tp}:"
                f"{self.decode_workers}x{self.decode_tp}")


def parse_pools(text: str) -> dict[str, int]:
    """'2x4:1x8' (or 2×4:1×8): P prefill workers of TPa GPUs, D decode workers of TPb."""
    m = _SPEC.match(text or "")
    if not m:
        raise WorkloadError(f"--disagg {text!r} is not P x TPa : D x TPb; write e.g. 2x4:1x8 "
                            "(two prefill workers of TP 4, one decode worker of TP 8)")
    p, tpa, d, tpb = (int(g) for g in m.groups())
    return {"prefill_workers": p, "prefill_tp": tpa, "decode_workers": d, "decode_tp": tpb}


def pools_from(disagg: str | bool | None, **given: int | None) -> Pools | None:
    """The pools of run_serve's disagg arguments: `disagg` the compact form (or True), the
    per-pool sizes given one by one on top; None when neither is set (aggregated serving)."""
    sizes = {k: v for k, v in given.items() if v is not None}
    if not disagg and not sizes:
        return None
    Pools(**sizes)  # each size valid before any is compared
    base = parse_pools(disagg) if isinstance(disagg, str) else {}
    clash = sorted(k for k in sizes if k in base and base[k] != sizes[k])
    if clash:
        raise WorkloadError(f"--{clash[0].replace('_', '-')} {sizes[clash[0]]} contradicts "
                            f"--disagg {disagg}; give one or the other")
    return Pools(**{**base, **sizes})


# --- the KV transfer -------------------------------------------------------------------------

@dataclass(frozen=True)
class KvLink:
    """The link one request's KV cache crosses: kind (nvlink or network), byte/s per GPU per
    direction, its source, and the measured send/recv table that estimates it (None: the
    bandwidth alone, no latency term)."""

    kind: str
    bandwidth: float
    source: str
    table: Any = None
    ratio: float = 1.0
    flag: str | None = None

    def seconds(self, nbytes: float) -> tuple[float, float]:
        """(estimate, limit) to send nbytes over one GPU's link: limit = bytes / bandwidth;
        estimate = the measured send/recv table (NCCL, two GPUs) where there is one, else
        the limit."""
        limit = nbytes / self.bandwidth
        if self.table is None:
            return limit, limit
        from perfmodel.cost.collective import estimate_seconds

        est = estimate_seconds(self.table, "send_recv", 2, nbytes, self.ratio)
        return max(est, limit), limit


def kv_link(gpu_spec, pools: Pools, choice: str = "auto") -> KvLink:
    """The link between the pools: NVLink when both fit one node (auto) or when asked, else the
    network; an error naming the fix when the profile states no bandwidth for it."""
    from perfmodel.cost.collective import link_of, tables_for
    from perfmodel.errors import GpuProfileError
    from perfmodel.hardware.gpu import load_gpu

    if choice not in LINKS:
        raise WorkloadError(f"--kv-link is one of {', '.join(LINKS)}, not {choice!r}")
    kind = choice if choice != "auto" else \
        "nvlink" if pools.gpus <= NODE_GPUS else "network"
    link = link_of(gpu_spec)
    if kind == "network":
        net = link.network_bandwidth if link is not None else None
        source = link.network_source if link is not None else ""
        if net is None and gpu_spec.datasheet:
            sheet = load_gpu(gpu_spec.datasheet).interconnect
            if sheet is not None:
                net, source = sheet.network_bandwidth, sheet.network_source
        if not net:
            raise GpuProfileError(f"{gpu_spec.name} states no network bandwidth between nodes; "
                                  "add interconnect.network_bandwidth (and its source) to its "
                                  "profile, or --kv-link nvlink for pools in one node")
        return KvLink("network", net, source)
    if link is None or not link.bandwidth:
        raise GpuProfileError(f"{gpu_spec.name} has no interconnect bandwidth; add an "
                              "interconnect: block (kind, bandwidth per direction, source)")
    table, ratio, flag = tables_for(gpu_spec, "send_recv")
    return KvLink(link.kind, link.bandwidth, link.source, table, ratio, flag)


def transfer_bytes(isl: int, prefill_bytes_per_token: float,
                   decode_bytes_per_token: float) -> float:
    """Bytes one GPU link carries for a request of I prompt tokens: each GPU of the prefill
    worker sends its share of the KV (bytes per token as one GPU of its layout holds it) to the
    decode GPU(s) holding that share, all in parallel, so the busiest link carries
    I × max(prefill GPU's bytes per token, decode GPU's)."""
    return isl * max(prefill_bytes_per_token, decode_bytes_per_token)


# --- the co-simulation -------------------------------------------------------------------------
