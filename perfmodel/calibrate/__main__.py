"""python -m perfmodel.calibrate [--out PATH] [--quick] [--device cuda:N|cpu] [--name NAME]."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from perfmodel.errors import PerfmodelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perfmodel.calibrate",
                                     description="Measure this box into a GPU profile YAML.")
    parser.add_argument("--out", type=Path, help="profile path or folder (default ./<name>.yaml)")
    parser.add_argument("--quick", action="store_true", help="a thinned grid (under a minute)")
    parser.add_argument("--device", help="cuda:N or cpu (default cuda:0)")
    parser.add_argument("--name", help="profile name (default <datasheet>-measured)")
    parser.add_argument("--log", action="store_true",
                        help="print each step and its seconds instead of a progress bar")
    args = parser.parse_args(argv)
    from perfmodel.calibrate import calibrate
    from perfmodel.gpu import load_gpu

    try:
        path = calibrate(out=args.out, quick=args.quick, device=args.device, name=args.name,
                         progress=_StepLog() if args.log else None)
    except PerfmodelError as exc:
        if os.environ.get("PERFMODEL_DEBUG") == "1":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no profile written (an existing one is unchanged)", file=sys.stderr)
        return 130
    spec = load_gpu(str(path))
    peaks = ", ".join(f"{d} {v / 1e12:.4g}" for d, v in spec.peak_flops.items() if v)
    print(f"wrote {path} in {spec.extra['run_time_s']:.1f} s: peak TFLOP/s {peaks}; "
          f"copy {spec.mem_bandwidth / 1e9:.4g} GB/s")
    return 0


class _StepLog:
    """A progress callback that prints each finished step and the seconds it took."""

    def __init__(self) -> None:
        self.last, self.label = time.perf_counter(), ""

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.label:
            print(f"[{done:4d}/{total}] {now - self.last:8.3f} s  {self.label}", file=sys.stderr,
                  flush=True)
        self.last, self.label = now, label


if __name__ == "__main__":
    sys.exit(main())
