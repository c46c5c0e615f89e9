"""Measured GPU points (docs/data, measured on the lent H100 and H200) against the predictions.

The figures of docs/validation.md, as tests: the limit is never beaten, and the estimate of the
torch-cudagraph engine is within 10% (median) and 20% (90th percentile) of what was measured,
on our engine and on the independent lean engine of ../shared/validation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel.hardware.gpu import load_gpu
from perfmodel.validate.compare import compare, default_gpu_profile, read_records, summarize
from perfmodel.validate.report import shared_lean_records

DATA = Path(__file__).resolve().parent.parent / "docs" / "data"


def points(device: str):
    records = read_records([DATA / f"validation-{device}.jsonl"])
    gpu = load_gpu(default_gpu_profile(records[0]["device_name"]))
    return [compare(r, gpu) for r in records]


@pytest.mark.parametrize("device", ["h100", "h200"])
def test_limit_never_beaten_and_estimate_within_figures(device):
    measured = points(device)
    assert len(measured) >= 40
    assert max(p.limit_ratio for p in measured) <= 1.0
    summary = summarize(measured)
    assert summary.median_abs_error <= 0.10 and summary.p90_abs_error <= 0.20


def test_independent_lean_engine():
    records = shared_lean_records()
    if not records:
        pytest.skip("../shared/validation not beside this checkout")
    gpu = load_gpu("h100-sxm-measured")
    measured = [compare(r, gpu) for r in records]
    assert max(p.limit_ratio for p in measured) <= 1.0
    summary = summarize(measured)
    assert summary.median_abs_error <= 0.10 and summary.p90_abs_error <= 0.20


def test_measured_profiles_stay_under_their_datasheets():
    """What a GPU delivers never exceeds its datasheet (dense figures)."""
    for name in ("h100-sxm-measured", "h200-measured"):
        measured = load_gpu(name)
        sheet = load_gpu(measured.datasheet)
        assert measured.mem_bandwidth < sheet.mem_bandwidth
        for dtype in ("bf16", "fp16", "fp8", "int8"):
            assert 0.3 * sheet.peak(dtype) < measured.peak(dtype) < sheet.peak(dtype)
        assert measured.tables and measured.tables.linear and measured.tables.rope
