"""serve against vLLM 0.26.0 measured on an H200 (docs/data/engines/, 2026-12-04): Gamma
arrivals with drawn lengths (issue 22's targets: TTFT p90 within 20%, TPOT median within 8%) and
two replicas sharing the GPU (output tokens/s within 10%, the median over the points). The data
are part of the repository; the simulation is deterministic (seeded), so these do not depend on
the machine."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from perfmodel.validate.engine_fit import compare
from perfmodel.validate.engine_fleet import compare_fleet, fleet_points
from perfmodel.validate.engine_runs import read_runs

DATA = Path(__file__).resolve().parents[1] / "docs/data/engines"


def _bursty():
    runs = [r for r in read_runs(DATA / "vllm-0.26.0-h200-prefix-bursty") if r.range_ratio]
    return compare(runs, "h200-measured", "vllm")


def test_bursty_points_are_the_three_burstiness_factors():
    assert sorted(c.run.burstiness for c in _bursty()) == [0.5, 1.0, 4.0]


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_bursty_arrivals_against_vllm(burstiness):
    (c,) = [c for c in _bursty() if c.run.burstiness == burstiness]
    assert c.run.range_ratio == 0.5 and c.run.request_rate == 12
    assert abs(c.ttft_p90 - 1) <= 0.20
    assert abs(c.tpot_median - 1) <= 0.08


def test_burstier_arrivals_wait_longer_in_both():
    """Measured and simulated alike, p90 TTFT falls as the arrivals even out (B 0.5 → 4)."""
    rows = sorted(_bursty(), key=lambda c: c.run.burstiness)
    measured = [c.run.p90_ttft_s for c in rows]
    simulated = [c.predicted.ttft_s.p90 for c in rows]
    assert measured == sorted(measured, reverse=True)
    assert simulated == sorted(simulated, reverse=True)


def test_two_replicas_on_one_gpu_against_vllm():
    points = compare_fleet(DATA / "vllm-0.26.0-h200-replicas", "h200-measured")
    assert len(points) == 4 and {p.replicas for p in points} == {2}
    assert statistics.median(abs(p.tok_s_ratio - 1) for p in points) <= 0.10


def test_fleet_points_pair_the_replicas_results():
    points = fleet_points(DATA / "vllm-0.26.0-h200-replicas")
    assert all(len(runs) == 2 for runs in points.values())
    assert {r.label for runs in points.values() for r in runs} == {"replica8101", "replica8102"}


def test_draft_model_speculation_against_vllm():
    """vLLM runs draft-model speculation synchronously; serve charges the profile's synchronous
    host time (measured on plain decode, docs/data/engines/vllm-0.26.0-h200-sync) to each step
    and drafter pass. Five points, nothing fitted on them: median |TPOT error| within 10%."""
    from perfmodel.validate.spec_runs import compare as compare_spec

    points = [p for p in compare_spec(DATA / "vllm-0.26.0-h200-spec", "h200-measured",
                                      "meta-llama/Llama-3.2-1B") if p.tpot_pred_s]
    assert len(points) == 5
    assert statistics.median(abs(p.tpot_ratio - 1) for p in points) <= 0.10
    assert all(abs(p.tpot_ratio - 1) <= 0.20 for p in points)


def test_synchronous_host_time_is_the_plain_sync_runs():
    """The profile's synchronous host time is what its rule reads off the plain decode run
    without async scheduling: measured − simulated mean TPOT (host 0) at one client."""
    from perfmodel.serve.engine_profile import select_profile
    from perfmodel.validate.engine_fit import simulate

    (run,) = read_runs(DATA / "vllm-0.26.0-h200-sync")
    assert run.settings.async_scheduling is False and run.concurrency == 1
    simulated = simulate(run, "h200-measured", "vllm", host_overhead_s=0.0).tpot_s.mean
    _, profile = select_profile("vllm", "h200", None)
    assert profile.sync_host_overhead_s == pytest.approx(run.tpot_s - simulated, abs=2e-5)
    assert profile.host_overhead_for("draft-model") == (profile.sync_host_overhead_s, True)
    assert profile.host_overhead_for("eagle") == (profile.host_overhead_s, False)
    assert profile.host_overhead_for(None) == (profile.host_overhead_s, False)
