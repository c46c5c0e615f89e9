"""The estimate: each op's time from the GPU profile's measured kernel tables (stub)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from perfmodel.gpu import GpuSpec
from perfmodel.ops import Op
from perfmodel.precision import Precision


@dataclass(frozen=True)
class Estimate:
    """How the estimate was made (note), or why there is none (estimator None)."""

    estimator: Callable[[Op], float | None] | None
    engine: str
    note: str
    flag: str | None = None


def estimator_for(gpu: GpuSpec, precision: Precision, engine: str | None) -> Estimate:
    return Estimate(None, engine or "torch-cudagraph", "no measured kernel tables yet")
