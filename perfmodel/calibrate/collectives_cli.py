"""`perfmodel calibrate-gpu --gpus N`: collectives over N GPUs into the profile's sidecar file.

The one-GPU calibration writes foo.yaml; this writes collectives/foo.yaml beside it (GPU counts
merged), which load_gpu reads with it (hardware/interconnect.py). Run it once per GPU count.
Beside NCCL's tables it times the custom-style all-reduce of calibrate/symm_allreduce.py
(one-shot, two-shot, and their minimum custom_all_reduce); where that cannot run here the
command says so in one line and writes the NCCL tables alone.
"""

from __future__ import annotations

import datetime
from pathlib import Path


def calibrate_collectives(gpus: str, out: Path | None = None, quick: bool = False,
                          name: str | None = None) -> str:
    """Measure, write the sidecar; one line saying what was written."""
    from perfmodel.calibrate.collectives import measure_collectives, visible_gpus
    from perfmodel.calibrate.device import (CalibrationError, describe, import_torch,
                                            profile_name)
    from perfmodel.calibrate.links import describe_link, write_sidecar

    torch = import_torch()
    if gpus != "all" and not gpus.isdigit():
        raise CalibrationError(f"--gpus takes a GPU count or 'all', not {gpus!r}")
    count = visible_gpus() if gpus == "all" else int(gpus)
    info = describe("cuda:0") if torch.cuda.is_available() else None
    if info is None:
        raise CalibrationError("--gpus measures NCCL collectives and torch sees no CUDA GPU "
                               "here; run it on the multi-GPU box")
    name = name or profile_name(info)
    profile = out if out is not None and out.suffix in (".yaml", ".yml") else \
        (out or Path(".")) / f"{name}.yaml"
    from perfmodel.calibrate.symm_allreduce import measure_custom_allreduce

    measured = measure_collectives(count, quick=quick)
    custom = measure_custom_allreduce(count, quick=quick)
    if "tables" in custom:
        measured["tables"].update(custom["tables"])
        measured["custom_method"] = custom["method"]
    environment = {"date": datetime.date.today().isoformat(), "device_name": info.name,
                   "torch": str(torch.__version__),
                   "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
    path = write_sidecar(profile, measured, describe_link(info.name), environment)
    best = measured["best_bus_bandwidth"]["all_reduce"]
    line = (f"wrote {path} ({count} GPUs) in {measured['run_time_s']:.0f} s: all-reduce bus "
            f"bandwidth up to {best / 1e9:.0f} GB/s")
    return line + ("\n" + custom_summary(custom))


def custom_summary(custom: dict) -> str:
    """One line on the custom all-reduce: its small-size latency, or why it was not timed."""
    if "tables" not in custom:
        return ("custom all-reduce not timed (PyTorch symmetric memory unavailable here: "
                f"{custom['unavailable']}); NCCL tables written alone")
    first = custom["tables"]["custom_all_reduce"][0]
    return (f"custom all-reduce (symmetric-memory one/two-shot) timed in "
            f"{custom['run_time_s']:.0f} s: {first[1] * 1e6:.1f} µs at {first[0] / 1024:.0f} KiB")
