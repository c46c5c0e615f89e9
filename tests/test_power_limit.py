"""The power limit: calibrate's sustained-rate curve, its profile field, and serve's use of it."""

from __future__ import annotations

import copy
import math

import pytest

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import load_gpu
from perfmodel.hardware.sustained import parse_sustained, sustained_fraction
from perfmodel.serve import run_serve

# The H100 bf16 curve as measured on 2026-11-27 (configs/gpus/h100-sxm-measured.yaml).
CURVE = ((0.019, 0.989), (0.05, 0.975), (0.101, 0.937), (0.201, 0.904), (0.499, 0.905),
         (1.0, 0.867), (2.0, 0.868))


def test_fraction_is_the_measured_point_at_each_burst_and_flat_beyond():
    for burst, fraction in CURVE:
        assert sustained_fraction(CURVE, burst) == pytest.approx(fraction)
    assert sustained_fraction(CURVE, 60.0) == pytest.approx(0.868)
    assert sustained_fraction(CURVE, 0.0) == sustained_fraction((), 5.0) == 1.0


def test_fraction_between_points_is_linear_in_log_burst():
    """Half way in log between 0.05 s (0.975) and 0.101 s (0.937)."""
    mid = math.sqrt(0.05 * 0.101)
    assert sustained_fraction(CURVE, mid) == pytest.approx((0.975 + 0.937) / 2)


def test_bursts_a_tenth_of_the_shortest_measured_lose_nothing():
    """Below the first point the fraction rises to 1 at a tenth of its burst (the tables were
    timed in bursts of ~25 ms, so a burst that short runs at the table's rate)."""
    assert sustained_fraction(CURVE, 0.0019) == 1.0
    assert 0.989 < sustained_fraction(CURVE, 0.006) < 1.0


def test_bundled_measured_profiles_carry_curves_for_bf16_and_fp8():
    for name in ("h100-sxm-measured", "h200-measured"):
        gpu = load_gpu(name)
        assert set(gpu.sustained) == {"bf16", "fp8"}
        for curve in gpu.sustained.values():
            assert 0.8 < curve[-1][1] < 0.9  # ~1400 MHz of 1980 at 700 W: 0.83-0.87 measured
            assert curve[0][1] > 0.97
    assert load_gpu("h100-sxm").sustained == {}  # a datasheet measures nothing


@pytest.mark.parametrize("bad", [
    {"bf16": {"burst_s": [0.1, 0.05], "fraction": [0.9, 0.95]}},  # bursts not rising
    {"bf16": {"burst_s": [0.1], "fraction": [1.2]}},  # a fraction above 1
    {"bf16": {"burst_s": [0.1, 0.2], "fraction": [0.9]}},  # lengths differ
    {"bf16": [0.1, 0.9]},  # not a mapping
    [1, 2],
])
def test_a_malformed_curve_is_one_profile_error(bad):
    with pytest.raises(GpuProfileError, match="sustained"):
        parse_sustained(bad, "p.yaml")


def test_calibrate_writes_the_curves_as_the_loader_reads_them():
    from perfmodel.calibrate.profile import sustained_data

    curves = {"bf16": CURVE, "fp8": CURVE[:3]}
    assert parse_sustained(sustained_data(curves), "p.yaml") == curves


def test_calibrate_measures_the_curve_on_a_gpu_plan_only():
    from perfmodel.calibrate.plan import make_plan

    assert make_plan(quick=False, cpu=True).sustained_bursts_s == ()
    for quick in (False, True):
        plan = make_plan(quick=quick, cpu=False)
        assert plan.sustained_bursts_s[-1] >= 2.0 and plan.sustained_dtypes == ("bf16", "fp8")


def _costs(gpu: str):
    """(serve's step cost on `gpu`, the same without the power limit)."""
    report = run_serve("meta-llama/Llama-3.1-8B", gpu=gpu, engine="vllm", concurrency=1,
                       num_requests=1, isl=64, osl=2, host_overhead_s=0.0)
    plain = copy.copy(report.step_cost)
    plain.sustained = ()
    return report.step_cost, plain


def test_a_long_prefill_step_runs_at_the_sustained_fraction_and_the_limit_does_not_move():
    """An 8192-token prefill of Llama-3.1-8B on the H100 (~0.2 s of matrix work): the estimate
    grows by its compute-bound share × (1 / fraction − 1); decode at batch 1 (memory-bound)
    does not move, nor does any limit."""
    throttled, plain = _costs("h100-sxm-measured")
    assert throttled.sustained == CURVE
    chunks = [(0, 8192)]
    (est, lim), (est0, lim0) = throttled.step(0, 0, chunks, 1), plain.step(0, 0, chunks, 1)
    cmp = plain.linear(8192, False)[2] + plain.prefill_attention(chunks)[2]
    assert 0.1 < cmp < est0
    assert est == pytest.approx(est0 + cmp * (1 / sustained_fraction(CURVE, cmp) - 1))
    assert 1.05 < est / est0 < 1.12 and lim == lim0
    assert throttled.step(1, 1024, [], 1) == plain.step(1, 1024, [], 1)


def test_the_power_limit_never_takes_an_estimate_below_its_limit():
    cost, _ = _costs("h200-measured")
    for step in [(0, 0, [(0, t)], 1) for t in (1, 64, 2048, 8192)] + \
                [(b, b * 2000, [], b) for b in (1, 64, 512)] + [(32, 32 * 900, [(0, 4096)], 33)]:
        est, lim = cost.step(*step)
        assert est >= lim


def test_serve_reports_the_curve_it_used_and_none_on_a_datasheet():
    """--json names the power-limit curve: the compute dtype's (fp8 for --precision fp8), none
    where the profile measured none."""
    fp8 = run_serve("meta-llama/Llama-3.1-8B", gpu="h200-measured", precision="fp8",
                    concurrency=2, num_requests=2, isl=64, osl=2).metrics["power_limit"]
    assert fp8["dtype"] == "fp8"
    assert tuple(zip(fp8["burst_s"], fp8["fraction"])) == load_gpu("h200-measured").sustained["fp8"]
    assert run_serve("meta-llama/Llama-3.1-8B", gpu="b200", concurrency=2, num_requests=2,
                     isl=64, osl=2).metrics["power_limit"] is None


def test_the_burst_gemms_are_timed_as_the_tables_are():
    """calibrate/power.py's pair of linears on the CPU: 2·m·k·n FLOPs, a positive table-method
    rate, and the two calls give the same product shape."""
    pytest.importorskip("torch")
    from perfmodel.calibrate.power import gemm_pair
    from perfmodel.calibrate.timing import Timer

    fns, flop, rate = gemm_pair("bf16", (32, 64, 48), Timer("cpu", 1 << 20, rep_s=0.01,
                                                            point_budget_s=0.001))
    assert flop == 2 * 32 * 64 * 48
    assert fns[0]().shape == fns[1]().shape == (32, 48)
    assert rate() > 0
