"""calibrate-gpu's peaks that bite: the best of the repeats, on synthetic samples (no torch, no
timing; docs/validation.md, "Tests that bite"; tools/plant_bugs.py)."""

from __future__ import annotations

from types import SimpleNamespace

from perfmodel.calibrate import peaks, profile

# FLOP/s a fake measurement returns, per size, in call order: the sweep's first run at each
# size, then the repeats at the best size.
SAMPLES = {256: [10e12], 512: [30e12, 25e12, 40e12, 20e12]}


def _peak(what="bf16", shape=lambda s: (s, s, s)):
    queues = {size: list(rates) for size, rates in SAMPLES.items()}
    return peaks._best_then_repeat(what, f"peak {what}", (256, 512),
                                   lambda size: queues[size].pop(0), 3,
                                   SimpleNamespace(is_cuda=False), lambda label: None, shape)


def test_peak_is_the_best_of_the_repeats():
    """The seed's method and docs/calibration.md: sweep the sizes, keep the best (512: 30
    TFLOP/s against 10), time it 3 more times (25, 40, 20) and take the best of the 4 runs,
    40 TFLOP/s; their median would be 27.5 and their min 20. The spread keeps all three."""
    peak = _peak()
    assert peak.best_shape == (512, 512, 512)
    assert peak.value == 40e12
    assert (peak.spread.min, peak.spread.median, peak.spread.max) == (20e12, 27.5e12, 40e12)
    assert peak.sweep == ((256, 10e12), (512, 30e12))


def test_profile_writes_the_best_as_the_peak(monkeypatch):
    """The profile's peak_flops and mem_bandwidth are those bests (40e12 FLOP/s and, for a
    copy with the same samples, 40e12 byte/s), the spread beside them."""
    monkeypatch.setattr(profile, "tables_data", lambda tables: {})
    measured = profile.Measurements(peaks={"bf16": _peak()},
                                    bandwidth=_peak("mem_bandwidth", lambda s: (s,)),
                                    tables=None, unsupported={}, notes=(), run_time_s=1.0)
    data = profile.build_profile(name="x-measured", description="x", date="2026-01-01",
                                 mode="quick", method_version=2, datasheet=None, mem_bytes=1,
                                 environment={}, measured=measured)
    assert data["peak_flops"]["bf16"] == 40e12 and data["peak_flops"]["fp8"] is None
    assert data["mem_bandwidth"] == 40e12
    assert data["spread"]["bf16"]["median"] == 27.5e12
    assert data["spread"]["mem_bandwidth"]["best_bytes"] == 512
