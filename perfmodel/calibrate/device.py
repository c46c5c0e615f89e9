"""Which device calibrate measures, what it is, and the environment a profile records.

`resolve_device` turns --device into "cuda:N" or "cpu" (or one clear error); `describe` reads
the device's name, memory, cache and the software versions; `datasheet_for` matches a torch
device name to the bundled datasheet profile it should be compared with.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass

from perfmodel.errors import PerfmodelError

# (substrings that must all appear in torch's device name, bundled datasheet profile); first wins
DATASHEETS = (
    (("H100", "PCIE"), "h100-pcie"),
    (("H100", "HBM3"), "h100-sxm"),
    (("H100", "SXM"), "h100-sxm"),
    (("H200",), "h200"),
    (("A100", "SXM4", "80GB"), "a100-sxm-80gb"),
    (("L40S",), "l40s"),
    (("RTX", "4090"), "rtx-4090"),
)


class CalibrationError(PerfmodelError):
    """Calibration cannot run here (no torch, no such device)."""


@dataclass(frozen=True)
class DeviceInfo:
    """The measured device and its software, as a profile's `environment` records them."""

    device: str  # "cuda:N" or "cpu"
    name: str
    count: int
    mem_bytes: int
    cache_bytes: int  # L2 of a GPU; the last-level cache of a CPU
    multiprocessors: int | None
    capability: str | None
    driver: str | None
    cuda: str | None
    torch: str
    triton: str | None
    python: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def environment(self) -> dict:
        return {"device": self.device, "device_name": self.name, "device_count": self.count,
                "compute_capability": self.capability, "driver": self.driver, "cuda": self.cuda,
                "torch": self.torch, "triton": self.triton, "python": self.python,
                "multiprocessors": self.multiprocessors, "l2_bytes": self.cache_bytes}


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise CalibrationError("calibrate-gpu needs torch (and triton on CUDA): "
                               "pip install 'perfmodel[gpu]'") from exc
    return torch


def resolve_device(device: str | None) -> str:
    """'cuda:N' or 'cpu' from --device; default cuda:0, or an error that suggests --device cpu."""
    torch = import_torch()
    text = (device or "cuda:0").strip().lower()
    if text == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise CalibrationError(f"--device {device!r} is not cuda:N or cpu")
    if not torch.cuda.is_available():
        raise CalibrationError("no CUDA GPU is visible to torch here; run with --device cpu to "
                               "calibrate the CPU, or install a CUDA build of torch")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise CalibrationError(f"--device cuda:{index}: torch sees {torch.cuda.device_count()} "
                               f"GPU(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"


def describe(device: str) -> DeviceInfo:
    torch = import_torch()
    python = platform.python_version()
    if device == "cpu":
        return DeviceInfo(device, cpu_name(), 1, _ram_bytes(), _cpu_cache_bytes(), os.cpu_count(),
                          None, None, None, str(torch.__version__), _triton_version(), python)
    props = torch.cuda.get_device_properties(device)
    return DeviceInfo(
        device, props.name, torch.cuda.device_count(), int(props.total_memory),
        int(getattr(props, "L2_cache_size", 0) or 50 << 20), int(props.multi_processor_count),
        f"{props.major}.{props.minor}", _driver_version(), str(torch.version.cuda),
        str(torch.__version__), _triton_version(), python)


def datasheet_for(device_name: str) -> str | None:
    """The bundled datasheet profile for a torch device name ('NVIDIA H100 80GB HBM3')."""
    upper = device_name.upper()
    for needles, name in DATASHEETS:
        if all(n in upper for n in needles):
            return name
    return None


def slug(text: str) -> str:
    """'NVIDIA GeForce RTX 5090' -> 'nvidia-geforce-rtx-5090'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def profile_name(info: DeviceInfo) -> str:
    sheet = datasheet_for(info.name) if info.is_cuda else None
    if sheet:
        return f"{sheet}-measured"
    return f"{slug(('cpu ' if not info.is_cuda else '') + info.name)}-measured"


def free_bytes(device: str) -> int:
    """Memory free for new tensors now: the GPU's, or the CPU's available RAM."""
    if device == "cpu":
        return _meminfo("MemAvailable") or _ram_bytes() // 2
    torch = import_torch()
    return int(torch.cuda.mem_get_info(device)[0])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _meminfo("MemTotal") or 8 << 30


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_cache_bytes() -> int:
    """Largest cache of cpu0 from sysfs (its last level); 32 MiB where sysfs does not say."""
    sizes = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in range(8):
        try:
            with open(f"{base}/index{index}/size") as fh:
                text = fh.read().strip().upper()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        digits = text.rstrip("KMB")
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    return max(sizes, default=32 << 20)


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return getattr(triton, "__version__", None)


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - NVML is optional; fall back to nvidia-smi
        pass
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=True)
        return done.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
