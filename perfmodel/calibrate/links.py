"""The link between this box's GPUs (NVML, else `nvidia-smi topo -m`), and the sidecar file that
keeps it with the measured collective tables beside a profile (collectives/<profile>.yaml).

Per-link rates are NVIDIA's, per direction: NVLink 3 (A100) 12 links = 600 GB/s total, NVLink 4
(H100/H200) 18 links = 900 GB/s total, NVLink 5 (B200) 18 links = 1.8 TB/s total, so 25, 25 and
50 GB/s per link and direction (NVIDIA A100, H100 and DGX B200 datasheets).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from perfmodel.hardware.interconnect import sidecar_path

LINK_RATE = {3: 25e9, 4: 25e9, 5: 50e9}  # byte/s per NVLink link and direction


def nvlink_from_nvml(device: int = 0) -> tuple[int, int] | None:
    """(active NVLink links, NVLink version) of a GPU through NVML, or None without NVML."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device)
        links, version = 0, 0
        for link in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(handle, link):
                    links += 1
                    version = version or int(pynvml.nvmlDeviceGetNvLinkVersion(handle, link))
            except pynvml.NVMLError:
                break
        return links, version
    except Exception:  # noqa: BLE001 - NVML missing or refused in a VM: fall back
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def parse_topology(text: str) -> int | None:
    """NVLink links between GPU0 and GPU1 in `nvidia-smi topo -m` output (NV18 -> 18), 0 where
    they talk over PCIe (PIX, PXB, PHB, NODE, SYS), None if the matrix is not there."""
    rows = [line.split() for line in text.splitlines() if line.startswith("GPU0")]
    if not rows or len(rows[0]) < 3:
        return None
    cell = rows[0][2]
    match = re.fullmatch(r"NV(\d+)", cell)
    return int(match.group(1)) if match else 0


def nvlink_version_of(gpu_name: str) -> int:
    """NVLink generation of a GPU family, by name (H100/H200 4, B200/GB200 5, A100 3), or 0."""
    name = gpu_name.upper()
    for tag, version in (("B200", 5), ("B100", 5), ("H100", 4), ("H200", 4), ("H800", 4),
                         ("A100", 3), ("A800", 3)):
        if tag in name:
            return version
    return 0


def describe_link(gpu_name: str) -> dict[str, Any]:
    """The interconnect block: kind, per-GPU bandwidth per direction, and how it was found."""
    found = nvlink_from_nvml()
    how = "NVML"
    if not found or not found[0]:
        try:
            text = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        links = parse_topology(text)
        found = (links, nvlink_version_of(gpu_name)) if links is not None else None
        how = "nvidia-smi topo -m (NVLink version from the GPU name)"
    if not found or not found[0]:
        return {"kind": "unknown", "source": f"no NVLink seen by {how}; PCIe or unknown"}
    links, version = found
    if version not in LINK_RATE:  # NVML numbers its versions by an enum; trust the GPU family
        version = nvlink_version_of(gpu_name)
    rate = LINK_RATE.get(version)
    block = {"kind": f"nvlink{version}" if version in LINK_RATE else "unknown",
             "source": f"{how}: {links} NVLink {version} links × {rate / 1e9:.0f} GB/s per "
                       "direction (NVIDIA datasheet per-link rate)" if rate else how}
    if rate:
        block["bandwidth"] = float(f"{links * rate:.4g}")
    return block


def write_sidecar(profile: Path, measured: dict[str, Any], link: dict[str, Any],
                  environment: dict[str, Any]) -> Path:
    """Merge one GPU count's tables into collectives/<profile name>.yaml; returns its path."""
    path = sidecar_path(str(profile))
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data = data or {}
    data["interconnect"] = link
    block = data.setdefault("collectives", {})
    block.update({"date": environment.get("date", ""), "method": measured["method"],
                  "environment": environment})
    if measured.get("custom_method"):
        block["custom_method"] = measured["custom_method"]
    block[str(measured["gpus"])] = measured["tables"]
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# NCCL collectives (and the custom-style symmetric-memory all-reduce) measured by\n"
              f"# `perfmodel calibrate-gpu --gpus N`; merged into the profile {profile.name} on\n"
              "# load. Bytes as nccl-tests counts them, seconds.\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100))
    tmp.replace(path)
    return path
