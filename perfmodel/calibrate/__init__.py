"""calibrate-gpu: measure what a box delivers and write a GPU profile YAML.

Peaks (matmul FLOP/s per dtype, copy bandwidth) and small-kernel tables (linear layers per dtype
and m, attention, elementwise, launch floor, RMSNorm, strided elementwise, MoE routing, sort and
grouped GEMM), timed on random data. torch and triton are imported inside functions only:
importing this package costs nothing on a laptop without them. See docs/calibration.md.
"""

from __future__ import annotations

from perfmodel.calibrate.device import CalibrationError
from perfmodel.calibrate.run import calibrate

__all__ = ["CalibrationError", "calibrate"]
