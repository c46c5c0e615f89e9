"""Run `calibrate-gpu` (full) with one log line per step: elapsed seconds and the step's label.

For the device calls (scripts/gpu-calibrate.sh), where rich's bar shows nothing in a log; the
per-step times say where a run spends its minutes. Usage: python3 scripts/calibrate_logged.py
NAME OUT.yaml [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from perfmodel.calibrate import calibrate
from perfmodel.hardware.gpu import load_gpu


def main(name: str, out: str, quick: bool) -> None:
    started = time.perf_counter()

    def progress(label: str, done: int, total: int) -> None:
        print(f"{time.perf_counter() - started:8.2f} s  {done:4d}/{total}  {label}", flush=True)

    path = calibrate(out=Path(out), quick=quick, name=name, progress=progress)
    spec = load_gpu(str(path))
    peaks = ", ".join(f"{d} {v / 1e12:.4g}" for d, v in spec.peak_flops.items() if v)
    print(f"wrote {path} in {spec.extra['run_time_s']:.1f} s: peak TFLOP/s {peaks}; "
          f"copy {spec.mem_bandwidth / 1e9:.4g} GB/s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--quick" in sys.argv[3:])
